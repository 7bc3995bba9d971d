"""`mlplane secrets list | get | set`: the value goes in only from a file or stdin, and comes out
only on stdout of `get`. The commands act as the signed-in user (alice@acme.com) unless a test
hands them another identity's credentials."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mlplane.cli.main import main
from tests.harness import Team
from tests.teams import process_env, team_fixture, wipe

VALUE = b"sk-cli-do-not-leak-51e0\n"

team = team_fixture()

Run = Callable[..., tuple[int, bytes, str]]


@pytest.fixture
def project_file(team: Team, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The team's project with no secrets yet, and no backend named by the environment."""
    for var in ("MLPLANE_SECRETS_BACKEND", "MLPLANE_SECRETS_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    return wipe(team.project_file)


@pytest.fixture
def run(team: Team, project_file: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> Run:
    def call(*args: str, who: str | None = None, **env: str) -> tuple[int, bytes, str]:
        """`mlplane secrets ARGS` as `who` (default: the signed-in user): (exit, out, err)."""
        with team.environment(**(team.env(who) if who else {}), **env):
            code = main(["-f", str(project_file), "secrets", *args])
        out, err = capsysbinary.readouterr()
        return code, out, err.decode()

    return call


def test_set_from_file_then_get_prints_exactly_the_value(run: Run, tmp_path: Path) -> None:
    src = tmp_path / "value.txt"
    src.write_bytes(VALUE)
    code, out, err = run("set", "openai", "--from-file", str(src))
    assert (code, out) == (0, b"")
    assert "openai: added version 1" in err and VALUE.decode().strip() not in err
    code, out, err = run("get", "openai")
    assert (code, out, err) == (0, VALUE, "")


def test_set_from_stdin_and_get_a_version(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    for value in (b"one", b"two"):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(value)))
        assert run("set", "api", "--stdin")[0] == 0
    assert run("get", "api", "--version", "1")[1] == b"one"
    assert run("get", "api")[1] == b"two"
    code, _, err = run("get", "api", "--version", "9")
    assert code == 5 and "version 9 of secret 'api' not found" in err
    code, _, err = run("get", "api", "--version", "x")
    assert code == 2 and "version" in err


def test_list_shows_versions_never_values(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("list")[1] == b"no secrets\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(VALUE)))
    run("set", "openai", "--stdin")
    code, out, _ = run("list")
    assert code == 0 and b"openai" in out and VALUE.strip() not in out
    code, out, _ = run("list", "--format", "json")
    [row] = json.loads(out)
    assert row["name"] == "openai" and row["latest"] == 1
    assert row["versions"][0]["state"] == "enabled" and VALUE.strip() not in out


def test_set_never_takes_the_value_as_an_argument(run: Run, project_file: Path) -> None:
    for args in (["set", "openai"], ["set", "openai", "sk-inline"]):
        with pytest.raises(SystemExit) as exit_:
            run(*args)
        assert exit_.value.code == 2
    assert not (project_file.parent / ".mlplane" / "secrets").exists()


def test_a_bad_name_is_refused_before_stdin_is_read(
    run: Run, project_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(VALUE))
    monkeypatch.setattr(sys, "stdin", stdin)
    code, _, err = run("set", "../x", "--stdin")
    assert code == 2 and err.startswith("error: NAME: '../x' is not a valid secret name")
    assert stdin.buffer.tell() == 0
    assert not (project_file.parent / ".mlplane" / "secrets").exists()


def test_as_a_principal_without_the_permission(run: Run, tmp_path: Path) -> None:
    """A process holding training's token may not read or add an ordinary secret (exit 3)."""
    src = tmp_path / "v"
    src.write_bytes(VALUE)
    run("set", "openai", "--from-file", str(src))
    code, out, err = run("get", "openai", who="training")
    assert code == 3 and out == b"" and "secretmanager.versions.access" in err
    assert "serviceAccount:mlplane-training@acme-ml.iam.gserviceaccount.com" in err
    code, _, err = run("set", "openai", "--from-file", str(src), who="training")
    assert code == 3 and "secretmanager.versions.add" in err
    assert VALUE.strip().decode() not in err
    code, _, err = run("set", "x", "--from-file", str(tmp_path / "no"))
    assert code == 2 and err.startswith("error: --from-file:")


def test_no_flag_or_variable_names_an_identity(run: Run, tmp_path: Path) -> None:
    """`--as` is refused (exit 3, nothing read); MLPLANE_PRINCIPAL is ignored."""
    src = tmp_path / "v"
    src.write_bytes(VALUE)
    assert run("set", "openai", "--from-file", str(src))[0] == 0
    code, out, err = run("get", "openai", "--as", "training")
    assert (code, out) == (3, b"") and "`--as` is refused" in err
    code, out, _ = run("get", "openai", MLPLANE_PRINCIPAL="training", MLPLANE_USER="training")
    assert (code, out) == (0, VALUE)  # as alice@acme.com, who may


def test_the_gcp_backend_without_its_package_says_what_to_install(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLANE_SECRETS_BACKEND", "gcp")
    monkeypatch.setitem(sys.modules, "google.cloud.secretmanager_v1", None)
    cloud = sys.modules.get("google.cloud")
    if cloud is not None:  # an earlier import left the submodule as an attribute
        monkeypatch.delattr(cloud, "secretmanager_v1", raising=False)
    code, _, err = run("list")
    assert code == 1 and "pip install 'google-cloud-secret-manager" in err
    monkeypatch.setenv("MLPLANE_SECRETS_BACKEND", "vault")
    code, _, err = run("list")
    assert code == 2 and "unknown secrets backend 'vault'" in err


def test_the_gcp_backend_without_credentials_is_a_clear_error(
    run: Run, project_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller is known (a token of `experimentation`), but Google's client library finds
    no Application Default Credentials for Secret Manager."""
    pytest.importorskip("google.cloud.secretmanager_v1", reason="google-cloud-secret-manager")
    monkeypatch.setenv("MLPLANE_SECRETS_BACKEND", "gcp")
    missing = str(project_file.parent / "none.json")
    code, _, err = run("list", who="experimentation", GOOGLE_APPLICATION_CREDENTIALS=missing)
    assert code == 1 and err.startswith("error: no Google credentials")


def test_the_installed_command(team: Team, project_file: Path) -> None:
    env = process_env(team)  # the signed-in user, as in a terminal
    cmd = [sys.executable, "-m", "mlplane", "-f", str(project_file), "secrets"]
    setv = subprocess.run(
        [*cmd, "set", "k", "--stdin"], input=VALUE, capture_output=True, env=env, timeout=30
    )
    assert setv.returncode == 0, setv.stderr
    got = subprocess.run([*cmd, "get", "k"], capture_output=True, env=env, timeout=30)
    assert (got.returncode, got.stdout) == (0, VALUE)
    top = subprocess.run(
        [sys.executable, "-m", "mlplane", "--help"], capture_output=True, env=env, timeout=30
    )
    assert b"secrets" in top.stdout
