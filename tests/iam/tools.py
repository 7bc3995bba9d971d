"""Tests that need a tool from outside Python (the gcloud CLI, its Cloud Spanner emulator).

They skip where the tool is absent, except under CI: `.ci/run` sets MLPLANE_REQUIRE_TOOLS=1,
which turns such a skip into a failure, so CI cannot pass without running them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REQUIRE = "MLPLANE_REQUIRE_TOOLS"


def missing(reason: str) -> None:
    """Skip, or fail under CI."""
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason} ({REQUIRE}=1: required here)")
    pytest.skip(reason)


def gcloud() -> str:
    path = shutil.which("gcloud")
    if path is None:
        missing("the gcloud CLI is not installed (Debian package google-cloud-cli)")
    assert path is not None
    return path


def gcloud_sdk_root() -> Path:
    out = subprocess.run(
        [gcloud(), "info", "--format=value(installation.sdk_root)"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
    )
    root = out.stdout.strip()
    if out.returncode != 0 or not root:
        missing(f"gcloud info gave no SDK root: {out.stderr.strip()[:200]}")
    return Path(root)


def spanner_emulator() -> Path:
    binary = gcloud_sdk_root() / "bin" / "cloud_spanner_emulator" / "emulator_main"
    if not binary.is_file():
        missing(
            f"the Cloud Spanner emulator is not installed ({binary}; Debian package "
            "google-cloud-cli-spanner-emulator)"
        )
    return binary
