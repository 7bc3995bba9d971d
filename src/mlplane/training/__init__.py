"""Workload-side training support: the runner a training VM executes (it imports nothing of the
control plane, like mlplane.serving)."""
