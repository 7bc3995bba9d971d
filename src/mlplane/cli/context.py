"""What every command shares: where the project file is, how to print.

On every command's start-up path: no pathlib or dataclasses at import (docs/decisions/0005).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (start-up path)

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

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


class Context:
    """Per-invocation settings."""

    def __init__(self, project_override: str | Path | None = None) -> None:
        self.project_override = None if project_override is None else str(project_override)

    @property
    def project_file(self) -> str:
        """The project file's path as a string (cheap: no pathlib)."""
        return self.project_override or find_project_file()

    @property
    def project_path(self) -> Path:
        from pathlib import Path

        return Path(self.project_file)


def emit_json(data: Any) -> None:
    import json

    print(json.dumps(data, indent=2, default=str))
