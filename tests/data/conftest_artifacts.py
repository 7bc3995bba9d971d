"""Helpers for the artifact tests: a project in a temporary directory and stores acting as a
given principal on its local buckets."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplane.data.artifacts import ArtifactStore
from tests.conftest import PROJECT_TOML

BUCKET = "acme-ml-mlplane-artifacts"
ROOT = f"gs://{BUCKET}"
ALICE = "alice@acme.com"  # a team user: reads the artifact bucket, may not write it


def reference_crc32c(data: bytes) -> int:
    """Bit-at-a-time CRC-32C (Castagnoli, reflected 0x82F63B78): independent of the table
    implementations under test."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def make_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The standard test project, with no ambient principal or backend from the environment."""
    for var in (
        "GCE_METADATA_HOST",
        "MLPLANE_PRINCIPAL",
        "MLPLANE_USER",
        "MLPLANE_PROJECT",
        "MLPLANE_ARTIFACTS_BACKEND",
    ):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "mlplane.toml"
    path.write_text(PROJECT_TOML)
    return path


def store_for(project: Path, principal: str) -> ArtifactStore:
    return ArtifactStore.open(project, principal, "local")


def files_under(path: Path) -> list[str]:
    """Every regular file below `path` except the bucket lock files."""
    if not path.exists():
        return []
    return sorted(
        str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and p.name != "#lock"
    )
