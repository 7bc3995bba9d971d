"""google.cloud is imported by the gcp backend only, and only when it is used: the local store
and the CLI run without google-cloud-secret-manager installed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import REPO

PACKAGE = REPO / "src" / "mlplane" / "data" / "secrets"
IMPORT = re.compile(r"^\s*(from|import)\s+(google|grpc)\b", re.M)


def test_only_the_gcp_module_imports_google() -> None:
    importing = sorted(p.name for p in PACKAGE.glob("*.py") if IMPORT.search(p.read_text()))
    assert importing == ["gcp.py"]
    cli = (REPO / "src" / "mlplane" / "cli" / "secrets.py").read_text()
    assert not IMPORT.search(cli) and "data.secrets.gcp" not in cli


def test_using_the_local_store_imports_no_cloud_sdk(project_file: object) -> None:
    code = (
        "import sys\n"
        "from mlplane.data.secrets import SecretValue, open_secrets\n"
        f"s = open_secrets({str(project_file)!r}, 'alice@acme.com')\n"
        "s.set('k', SecretValue(b'v')); assert s.get('k').reveal() == b'v'\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('google', 'grpc'))\n"
        "assert not loaded, loaded\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLANE_", "GCE_"))}
    env["PYTHONPATH"] = str(REPO / "src")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30
    )
    assert done.returncode == 0, done.stderr
