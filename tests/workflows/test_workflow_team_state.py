"""The team state through the session and the CLI (decision 1500): a `provider = "gcp"` project
reads and writes it in Cloud Storage (gcp-storage-emulator behind the precondition shim,
credentials from a token file); `mlplane state show|unlock`, `mlplane status` and `mlplane
state check` on it. A `provider = "local"` project is untouched: no team state, no Cloud
Storage, the same files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlplane.cli.main import main
from mlplane.engine.state import StateWrite
from mlplane.model.compute import FRONTEND_STACK, frontend
from mlplane.model.principals import Principal
from mlplane.workflows.session import Session
from tests.conftest import PROJECT_TOML, REPO

pytest.importorskip("gcp_storage_emulator.server", reason="gcp-storage-emulator is not installed")
sys.path.insert(0, str(REPO / "tests" / "engine"))
from gcs_support import BUCKET, Gcs, gcs_with_preconditions

ALICE = Principal.parse("user:alice@acme.com")


@pytest.fixture(scope="module")
def gcs_server() -> Iterator[Gcs]:
    with gcs_with_preconditions() as server:
        yield server


@pytest.fixture
def gcp_project(gcs_server: Gcs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    gcs_server.wipe()
    token = tmp_path / "token"
    token.write_text("a-test-token")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    monkeypatch.setenv("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", str(token))
    project_file = tmp_path / "proj" / "mlplane.toml"
    project_file.parent.mkdir()
    project_file.write_text(PROJECT_TOML.replace('zone = "us-central1-a"\n', (
        'zone = "us-central1-a"\nprovider = "gcp"\n')))  # fmt: skip
    yield project_file


def record_frontend(session: Session) -> None:
    """What an apply does to the store, without a cloud: lock the stack (the lease), write."""
    store = session.engine_store()
    with store.lock([FRONTEND_STACK]):
        for spec in frontend(endpoints_service="models.endpoints.acme-ml.cloud.goog").resources:
            store.write(StateWrite(spec.key, FRONTEND_STACK, spec, None))


def cli(capsys: pytest.CaptureFixture[str], project_file: Path, *argv: str) -> tuple[int, str]:
    code = main(["-f", str(project_file), *argv])
    out, err = capsys.readouterr()
    return code, out + err


def test_a_gcp_project_keeps_its_state_in_cloud_storage(
    gcp_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = Session.open(gcp_project)
    assert session.team is not None
    assert session.team.uri == f"gs://{BUCKET}/mlplane/state.db"
    code, out = cli(capsys, gcp_project, "state", "show")
    assert code == 0 and "none yet" in out and "lock        none" in out

    session.principal = ALICE  # whom the token belongs to (Google's tokeninfo, in real life)
    record_frontend(session)
    other = Session.open(gcp_project)  # a later command: reads what was uploaded
    assert {r.stack for r in other.store.load().values()} == {FRONTEND_STACK}
    code, out = cli(capsys, gcp_project, "status")
    assert code == 0 and "provider gcp" in out and "mlplane-urlmap" in out, out
    code, out = cli(capsys, gcp_project, "state", "check")
    assert code == 0 and "work-" in out, out
    assert not (gcp_project.parent / ".mlplane" / "state.db").exists()  # not the local file


def test_a_stale_lock_is_shown_and_broken_only_by_its_id(
    gcp_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = Session.open(gcp_project)
    session.principal = ALICE
    team = session.team
    assert team is not None
    taken = team._take_lock((FRONTEND_STACK,))  # a command that took the lock, then died
    held = team.current_lock()
    assert held == taken and held.who == "user:alice@acme.com"
    code, out = cli(capsys, gcp_project, "state", "show")
    assert code == 0 and f"lock id {held.id}" in out and "locked by user:alice@acme.com" in out

    later = Session.open(gcp_project)
    later.principal = Principal.parse("user:bob@acme.com")
    with pytest.raises(Exception, match=f"mlplane state unlock {held.id}"):
        record_frontend(later)
    code, out = cli(capsys, gcp_project, "state", "unlock", "not-it")
    assert code == 2 and "'not-it' is not the lock's id" in out
    code, out = cli(capsys, gcp_project, "state", "unlock", held.id)
    assert code == 0 and f"broke the lock {held.id}" in out
    code, out = cli(capsys, gcp_project, "state", "unlock", held.id)
    assert code == 1 and "is not locked" in out
    record_frontend(later)
    assert {r.stack for r in Session.open(gcp_project).store.load().values()} == {FRONTEND_STACK}


def test_a_local_project_has_no_team_state_and_reaches_no_cloud_storage(
    project_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = Session.open(project_file)
    assert session.team is None
    assert session.store.path == project_file.parent / ".mlplane" / "state.db"
    assert session.engine_store().lease is None
    code, out = cli(capsys, project_file, "state", "show")
    assert code == 2 and "'local' keeps the state on this machine" in out
    code = (
        "import sys; from mlplane.cli.main import main; from mlplane.workflows.session import "
        f"Session; f = {str(project_file)!r}; "
        "assert main(['-f', f, 'status']) == 0 and main(['-f', f, 'state', 'check']) == 0; "
        "Session.open(f).store.load(); "
        "bad = [m for m in sys.modules if 'team_state' in m or 'storage_objects' in m "
        "or m.startswith('google')]; print('BAD', bad) if bad else None; sys.exit(bool(bad))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "STORAGE_EMULATOR_HOST": "127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
