"""mlplane: the control plane for an ML team's Google Cloud project."""

__version__ = "0.1.0"
