"""`mlplane secrets list | get | set`: the value goes in only from a file or stdin, and comes out
only on stdout of `get`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlplane.cli.main import main
from tests.conftest import REPO

VALUE = b"sk-cli-do-not-leak-51e0\n"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "GCE_METADATA_HOST",
        "MLPLANE_PRINCIPAL",
        "MLPLANE_USER",
        "MLPLANE_SECRETS_BACKEND",
    ):
        monkeypatch.delenv(var, raising=False)


def run(
    project_file: Path, capsysbinary: pytest.CaptureFixture[bytes], *args: str
) -> tuple[int, bytes, str]:
    code = main(["-f", str(project_file), "secrets", *args])
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def test_set_from_file_then_get_prints_exactly_the_value(
    project_file: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    src = tmp_path / "value.txt"
    src.write_bytes(VALUE)
    code, out, err = run(project_file, capsysbinary, "set", "openai", "--from-file", str(src))
    assert (code, out) == (0, b"")
    assert "openai: added version 1" in err and VALUE.decode().strip() not in err
    code, out, err = run(project_file, capsysbinary, "get", "openai")
    assert (code, out, err) == (0, VALUE, "")


def test_set_from_stdin_and_get_a_version(
    project_file: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    for value in (b"one", b"two"):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(value)))
        assert run(project_file, capsysbinary, "set", "api", "--stdin")[0] == 0
    assert run(project_file, capsysbinary, "get", "api", "--version", "1")[1] == b"one"
    assert run(project_file, capsysbinary, "get", "api")[1] == b"two"
    code, _, err = run(project_file, capsysbinary, "get", "api", "--version", "9")
    assert code == 5 and "version 9 of secret 'api' not found" in err
    code, _, err = run(project_file, capsysbinary, "get", "api", "--version", "x")
    assert code == 2 and "version" in err


def test_list_shows_versions_never_values(
    project_file: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(project_file, capsysbinary, "list")[1] == b"no secrets\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(VALUE)))
    run(project_file, capsysbinary, "set", "openai", "--stdin")
    code, out, _ = run(project_file, capsysbinary, "list")
    assert code == 0 and b"openai" in out and VALUE.strip() not in out
    code, out, _ = run(project_file, capsysbinary, "list", "--format", "json")
    [row] = json.loads(out)
    assert row["name"] == "openai" and row["latest"] == 1
    assert row["versions"][0]["state"] == "enabled" and VALUE.strip() not in out


def test_set_never_takes_the_value_as_an_argument(
    project_file: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    for args in (["set", "openai"], ["set", "openai", "sk-inline"]):
        with pytest.raises(SystemExit) as exit_:
            run(project_file, capsysbinary, *args)
        assert exit_.value.code == 2
    assert not (project_file.parent / ".mlplane" / "secrets").exists()


def test_a_bad_name_is_refused_before_stdin_is_read(
    project_file: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(VALUE))
    monkeypatch.setattr(sys, "stdin", stdin)
    code, _, err = run(project_file, capsysbinary, "set", "../x", "--stdin")
    assert code == 2 and err.startswith("error: NAME: '../x' is not a valid secret name")
    assert stdin.buffer.tell() == 0
    assert not (project_file.parent / ".mlplane" / "secrets").exists()


def test_as_a_principal_without_the_permission(
    project_file: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    src = tmp_path / "v"
    src.write_bytes(VALUE)
    run(project_file, capsysbinary, "set", "openai", "--from-file", str(src))
    code, out, err = run(project_file, capsysbinary, "get", "openai", "--as", "training")
    assert code == 3 and out == b"" and "secretmanager.versions.access" in err
    code, _, err = run(
        project_file, capsysbinary, "set", "openai", "--from-file", str(src), "--as", "training"
    )
    assert code == 3 and "secretmanager.versions.add" in err
    assert VALUE.strip().decode() not in err
    code, _, err = run(project_file, capsysbinary, "set", "x", "--from-file", str(tmp_path / "no"))
    assert code == 2 and err.startswith("error: --from-file:")


def test_the_gcp_backend_without_its_package_says_what_to_install(
    project_file: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLANE_SECRETS_BACKEND", "gcp")
    monkeypatch.setitem(sys.modules, "google.cloud.secretmanager_v1", None)
    cloud = sys.modules.get("google.cloud")
    if cloud is not None:  # an earlier import left the submodule as an attribute
        monkeypatch.delattr(cloud, "secretmanager_v1", raising=False)
    code, _, err = run(project_file, capsysbinary, "list")
    assert code == 1 and "pip install 'google-cloud-secret-manager" in err
    monkeypatch.setenv("MLPLANE_SECRETS_BACKEND", "vault")
    code, _, err = run(project_file, capsysbinary, "list")
    assert code == 2 and "unknown secrets backend 'vault'" in err


def test_the_gcp_backend_without_credentials_is_a_clear_error(
    project_file: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("google.cloud.secretmanager_v1", reason="google-cloud-secret-manager")
    monkeypatch.setenv("MLPLANE_SECRETS_BACKEND", "gcp")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(project_file.parent / "none.json"))
    code, _, err = run(project_file, capsysbinary, "list")
    assert code == 1 and err.startswith("error: no Google credentials")


def test_the_installed_command(project_file: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLANE_", "GCE_"))}
    env["PYTHONPATH"] = str(REPO / "src")
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
