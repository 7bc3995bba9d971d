"""`mlplane artifacts ls|cp|cat|stat|rm`, end to end through main(), acting by tokens: the
signed-in user by default, a service account with a token of its own."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlplane.cli.main import main
from tests.conftest import PROJECT_TOML, REPO
from tests.data.conftest_artifacts import BUCKET, ROOT
from tests.harness import Team
from tests.teams import OUTSIDER, team_fixture, wipe

team = team_fixture(users=("bob@acme.com", OUTSIDER))


@pytest.fixture
def project(team: Team) -> Path:
    return wipe(team.project_file)


def cli(team: Team, *args: str, who: str | None = None, **env: str) -> int:
    """`mlplane artifacts ARGS` as `who` (default: the signed-in user, alice@acme.com)."""
    with team.environment(**(team.env(who) if who else {}), **env):
        return main(["-f", str(team.project_file), "artifacts", *args])


def test_round_trip(
    team: Team, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = b"\x00weights\xff" * 1000
    src = tmp_path / "model.pt"
    src.write_bytes(data)
    assert cli(team, "cp", str(src), f"{ROOT}/runs/1/", who="training") == 0
    assert f"{ROOT}/runs/1/model.pt" in capsys.readouterr().out

    assert cli(team, "ls", ROOT) == 0
    assert capsys.readouterr().out.split() == [f"{ROOT}/runs/"]
    assert cli(team, "ls", "-r", "-l", f"{ROOT}/runs", who="alice@acme.com") == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(len(data))) and f"{ROOT}/runs/1/model.pt#" in line

    assert cli(team, "stat", f"{ROOT}/runs/1/model.pt", who="bob@acme.com") == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["md5Hash"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert meta["size"] == len(data)

    out = tmp_path / "back" / "model.pt"
    assert cli(team, "cp", f"{ROOT}/runs/1/model.pt", str(out)) == 0
    assert out.read_bytes() == data
    assert [p.name for p in out.parent.iterdir()] == ["model.pt"]  # no temporary left


def test_cat_writes_bytes(
    team: Team, project: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    src = tmp_path / "notes.txt"
    src.write_bytes(b"line one\nline two\n")
    assert cli(team, "cp", str(src), f"{ROOT}/notes.txt", who="training") == 0
    capsysbinary.readouterr()
    assert cli(team, "cat", f"{ROOT}/notes.txt", who="serving-runtime") == 0
    assert capsysbinary.readouterr().out == b"line one\nline two\n"


def test_user_upload_denied_with_sanctioned_path(
    team: Team, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The signed-in user's write is denied (exit 3), naming the user, the permission and the
    CI trigger that does it; the bucket is not touched."""
    src = tmp_path / "model.pt"
    src.write_bytes(b"x")
    code = cli(team, "cp", str(src), f"{ROOT}/model.pt")
    err = capsys.readouterr().err
    assert code == 3
    assert "user:alice@acme.com" in err and "storage.objects.create" in err
    assert "CI trigger 'train'" in err and "mlplane ci trigger train" in err
    assert not (project.parent / ".mlplane" / "buckets" / BUCKET).exists()


def test_training_adhoc_token_acts_as_training_adhoc(
    team: Team, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A process holding a service account's token (CLOUDSDK_AUTH_ACCESS_TOKEN_FILE) acts as
    that account: users' ad-hoc training VMs read artifacts but cannot persist any."""
    src = tmp_path / "model.pt"
    src.write_bytes(b"x")
    assert cli(team, "cp", str(src), f"{ROOT}/model.pt", who="training") == 0
    capsys.readouterr()
    assert cli(team, "cat", f"{ROOT}/model.pt", who="training-adhoc") == 0
    assert cli(team, "cp", str(src), f"{ROOT}/other.pt", who="training-adhoc") == 3
    err = capsys.readouterr().err
    assert "serviceAccount:mlplane-training-adhoc@acme-ml.iam.gserviceaccount.com" in err
    assert "storage.objects.create" in err and "mlplane ci trigger train" in err


def test_identity_variables_of_earlier_versions_are_ignored(
    team: Team, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MLPLANE_PRINCIPAL and MLPLANE_USER name nobody: the signed-in user still acts."""
    src = tmp_path / "model.pt"
    src.write_bytes(b"x")
    code = cli(
        team, "cp", str(src), f"{ROOT}/m.pt", MLPLANE_PRINCIPAL="training", MLPLANE_USER="training"
    )
    assert code == 3
    assert "DENY user:alice@acme.com storage.objects.create" in capsys.readouterr().err
    assert not (project.parent / ".mlplane" / "buckets" / BUCKET).exists()


def test_an_outsider_gets_no_token(
    team: Team, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Signed in on this machine, but not on the project's team: the token endpoint refuses."""
    assert cli(team, "ls", ROOT, who=OUTSIDER) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert f"{OUTSIDER} is not a member of project acme-ml's team" in err


def test_without_a_signed_in_user_or_an_agent(
    team: Team, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 3 and what to run: `mlplane auth login` (no credentials), `mlplane up` (no agent)."""
    with team.environment(MLPLANE_CONFIG_DIR=str(tmp_path / "nobody")):
        assert main(["-f", str(team.project_file), "artifacts", "ls", ROOT]) == 3
    assert "you are not signed in: run `mlplane auth login`" in capsys.readouterr().err
    idle = tmp_path / "idle" / "mlplane.toml"
    idle.parent.mkdir()
    idle.write_text(PROJECT_TOML)
    with team.environment():
        assert main(["-f", str(idle), "artifacts", "ls", ROOT]) == 3
    err = capsys.readouterr().err
    assert "no local agent is running" in err and "`mlplane up`" in err


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["cat", f"{ROOT}/../escape"], 2, "'..'"),
        (["cat", f"{ROOT}/missing"], 1, "no such object"),
        (["ls", "gs://"], 2, "empty bucket"),
        (["ls", f"{ROOT}/nothing/here"], 1, "matched no objects"),
        (["cp", "a", "b"], 2, "one side must be a gs:// URI"),
        (["cp", "no-such-file", f"{ROOT}/x"], 2, "no such file"),
        (["cat", f"{ROOT}/x", "--as", "training"], 3, "`--as` is refused"),
        (["cat", f"{ROOT}/x", "--as=training"], 3, "mlplane auth login EMAIL"),
    ],
)
def test_clear_errors(
    team: Team,
    project: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    needle: str,
) -> None:
    assert cli(team, *args) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err


def test_precondition_from_the_cli(
    team: Team, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"a")
    args = ["cp", str(src), f"{ROOT}/a.bin", "--if-generation-match", "0"]
    assert cli(team, *args, who="training") == 0
    assert cli(team, *args, who="training") == 1
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
    team: Team, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc")
    assert cli(team, "cp", str(src), f"{ROOT}/d/a.bin", who="training") == 0
    capsys.readouterr()
    assert cli(team, "ls", "--format", "json", f"{ROOT}/d/") == 0
    listing = json.loads(capsys.readouterr().out)
    assert [o["uri"] for o in listing["objects"]] == [f"{ROOT}/d/a.bin"]
    assert listing["objects"][0]["size"] == 3 and listing["prefixes"] == []
    # nobody in the shipped model may delete artifacts
    assert cli(team, "rm", f"{ROOT}/d/a.bin", who="training") == 3
    assert "storage.objects.delete" in capsys.readouterr().err
    assert cli(team, "cat", f"{ROOT}/d/a.bin") == 0
