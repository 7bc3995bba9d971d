"""`mlplane artifacts ls|cp|cat|stat|rm`, end to end through main()."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlplane.cli.main import main
from tests.conftest import REPO
from tests.data.conftest_artifacts import BUCKET, ROOT, make_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_project(tmp_path, monkeypatch)


def cli(project: Path, *args: str) -> int:
    return main(["-f", str(project), "artifacts", *args])


def test_round_trip(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = b"\x00weights\xff" * 1000
    src = tmp_path / "model.pt"
    src.write_bytes(data)
    assert cli(project, "cp", str(src), f"{ROOT}/runs/1/", "--as", "training") == 0
    assert f"{ROOT}/runs/1/model.pt" in capsys.readouterr().out

    assert cli(project, "ls", ROOT, "--as", "alice@acme.com") == 0
    assert capsys.readouterr().out.split() == [f"{ROOT}/runs/"]
    assert cli(project, "ls", "-r", "-l", f"{ROOT}/runs", "--as", "alice@acme.com") == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(len(data))) and f"{ROOT}/runs/1/model.pt#" in line

    assert cli(project, "stat", f"{ROOT}/runs/1/model.pt", "--as", "bob@acme.com") == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["md5Hash"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert meta["size"] == len(data)

    out = tmp_path / "back" / "model.pt"
    assert cli(project, "cp", f"{ROOT}/runs/1/model.pt", str(out), "--as", "alice@acme.com") == 0
    assert out.read_bytes() == data
    assert [p.name for p in out.parent.iterdir()] == ["model.pt"]  # no temporary left


def test_cat_writes_bytes(
    project: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    src = tmp_path / "notes.txt"
    src.write_bytes(b"line one\nline two\n")
    assert cli(project, "cp", str(src), f"{ROOT}/notes.txt", "--as", "training") == 0
    capsysbinary.readouterr()
    assert cli(project, "cat", f"{ROOT}/notes.txt", "--as", "serving-runtime") == 0
    assert capsysbinary.readouterr().out == b"line one\nline two\n"


def test_user_upload_denied_with_sanctioned_path(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "model.pt"
    src.write_bytes(b"x")
    code = cli(project, "cp", str(src), f"{ROOT}/model.pt", "--as", "alice@acme.com")
    err = capsys.readouterr().err
    assert code == 3
    assert "storage.objects.create" in err and "mlplane ci trigger train" in err
    assert not (project.parent / ".mlplane" / "buckets" / BUCKET).exists()


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["cat", f"{ROOT}/../escape"], 2, "'..'"),
        (["cat", f"{ROOT}/missing"], 1, "no such object"),
        (["ls", "gs://"], 2, "empty bucket"),
        (["ls", f"{ROOT}/nothing/here"], 1, "matched no objects"),
        (["cp", "a", "b"], 2, "one side must be a gs:// URI"),
        (["cp", "no-such-file", f"{ROOT}/x", "--as", "training"], 2, "no such file"),
        (["cat", f"{ROOT}/x", "--as", "nobody"], 2, "--as"),
    ],
)
def test_clear_errors(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    needle: str,
) -> None:
    assert cli(project, *args) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err


def test_precondition_from_the_cli(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"a")
    args = ["cp", str(src), f"{ROOT}/a.bin", "--as", "training", "--if-generation-match", "0"]
    assert cli(project, *args) == 0
    assert cli(project, *args) == 1
    assert "precondition failed (HTTP 412)" in capsys.readouterr().err


def test_cli_and_store_do_not_import_the_cloud_sdk() -> None:
    code = (
        "import sys; import mlplane.cli.artifacts, mlplane.data.artifacts; "
        "assert not any(m.split('.')[0] in ('google', 'google_crc32c') for m in sys.modules), "
        "[m for m in sys.modules if m.split('.')[0] in ('google', 'google_crc32c')]"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr


def test_rm_and_json_listing(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc")
    assert cli(project, "cp", str(src), f"{ROOT}/d/a.bin", "--as", "training") == 0
    capsys.readouterr()
    assert cli(project, "ls", "--json", f"{ROOT}/d/", "--as", "alice@acme.com") == 0
    listing = json.loads(capsys.readouterr().out)
    assert [o["uri"] for o in listing["objects"]] == [f"{ROOT}/d/a.bin"]
    assert listing["objects"][0]["size"] == 3 and listing["prefixes"] == []
    # nobody in the shipped model may delete artifacts
    assert cli(project, "rm", f"{ROOT}/d/a.bin", "--as", "training") == 3
    assert "storage.objects.delete" in capsys.readouterr().err
    assert cli(project, "cat", f"{ROOT}/d/a.bin") == 0
