"""What every command shares: where the project file is, how to print, how to fail."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PROJECT_FILE = "mlplane.toml"


def find_project_file(start: Path | None = None) -> Path:
    """MLPLANE_PROJECT, else the nearest mlplane.toml from the working directory upward, else
    ./mlplane.toml (which commands then report as missing)."""
    env = os.environ.get("MLPLANE_PROJECT")
    if env:
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / PROJECT_FILE).is_file():
            return d / PROJECT_FILE
    return here / PROJECT_FILE


class Context:
    """Per-invocation settings (a plain class: this module is on every command's start-up path)."""

    def __init__(self, project_override: Path | None = None) -> None:
        self.project_override = project_override

    @property
    def project_path(self) -> Path:
        return self.project_override or find_project_file()


def emit_json(data: Any) -> None:
    import json

    print(json.dumps(data, indent=2, default=str))
