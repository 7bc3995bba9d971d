"""Example models for mlplane (importable as `examples.*` from the repository root)."""
