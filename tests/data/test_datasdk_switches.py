"""`[data]` in mlplane.toml picks each store's backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplane.data.artifacts.store import make_backend
from mlplane.data.identity import Caller
from mlplane.data.secrets.service import backend_name
from tests.conftest import PROJECT_TOML


def test_switches_pick_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPLANE_ARTIFACTS_BACKEND", raising=False)
    monkeypatch.delenv("MLPLANE_SECRETS_BACKEND", raising=False)
    path = tmp_path / "mlplane.toml"
    path.write_text(PROJECT_TOML)
    caller = Caller.resolve(path, "alice@acme.com")
    assert type(make_backend(None, caller)).__name__ == "LocalBackend"
    assert backend_name(path) == "local"
    path.write_text(PROJECT_TOML + '\n[data]\nsecrets = "secret-manager"\nartifacts = "gcs"\n')
    assert backend_name(path) == "secret-manager"
    gcs = pytest.importorskip("google.cloud.storage")
    assert gcs is not None
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # never contacted
    assert type(make_backend(None, Caller.resolve(path, "alice@acme.com"))).__name__ == "GcsBackend"
