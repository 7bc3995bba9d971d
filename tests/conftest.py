"""Shared fixtures: a standard project file in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_TOML = """\
[project]
id = "acme-ml"
region = "us-central1"
zone = "us-central1-a"

[team]
principals = ["user:alice@acme.com", "group:ml@acme.com"]

[team.groups]
"ml@acme.com" = ["bob@acme.com"]
"""

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project_file(tmp_path: Path) -> Path:
    path = tmp_path / "mlplane.toml"
    path.write_text(PROJECT_TOML)
    return path
