"""Where the project file is: $MLPLANE_PROJECT, else the nearest mlplane.toml upward.

Below every layer (like `mlplane.errors`), stdlib only: the CLI, workflows and workload-side
code all find the project the same way, on their start-up paths.
"""

from __future__ import annotations

import os

PROJECT_FILE = "mlplane.toml"


def find_project_file(start: str | None = None) -> str:
    """MLPLANE_PROJECT, else the nearest mlplane.toml from the working directory upward, else
    ./mlplane.toml (which commands then report as missing)."""
    env = os.environ.get("MLPLANE_PROJECT")
    if env:
        return env
    here = os.path.abspath(start or os.getcwd())
    d = here
    while True:
        candidate = os.path.join(d, PROJECT_FILE)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(d)
        if parent == d:
            return os.path.join(here, PROJECT_FILE)
        d = parent
