"""Workload-side notebook support: the launcher a notebook VM runs (no control-plane imports)."""
