"""The data SDK's per-store switch, `[data] STORE = "BACKEND"` in mlplane.toml (validated by the
project file's schema; read here with tomllib alone, to keep workload start-up light)."""

from __future__ import annotations

import tomllib
from pathlib import Path


def data_switch(project_file: Path | str, store: str, default: str) -> str:
    try:
        with open(project_file, "rb") as f:
            value = tomllib.load(f).get("data", {}).get(store, default)
    except (OSError, tomllib.TOMLDecodeError):
        return default
    return str(value)
