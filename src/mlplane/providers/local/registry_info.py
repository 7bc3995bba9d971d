"""Where a project's local Artifact Registry listens: `.mlplane/agent/registry.json`, written by
the agent while its registry runs (`agent/registry.py`), read by clients without the agent."""

from __future__ import annotations

import json
from pathlib import Path

REGISTRY_FILE = "registry.json"  # beside agent.json: {"host": "127.0.0.1:PORT", "pid": N}


def read_address(agent_root: Path) -> str:
    """HOST:PORT of a project's running local registry, '' when none runs."""
    try:
        return str(json.loads((agent_root / REGISTRY_FILE).read_text()).get("host", ""))
    except (OSError, ValueError, AttributeError):
        return ""
