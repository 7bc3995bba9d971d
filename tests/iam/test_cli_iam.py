"""The `mlplane` command end to end (in process, through main(argv))."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlplane.cli.main import main
from tests.iam.conftest_audit import plan_of


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_then_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mlplane.toml"
    code, out, _ = run(
        capsys, "-f", str(path), "init", "--project-id", "acme-ml", "--member", "user:a@b.com"
    )
    assert code == 0 and path.exists()
    code, out, _ = run(capsys, "-f", str(path), "iam", "plan", "--format", "json")
    plan = json.loads(out)
    assert code == 0 and plan["project"] == "acme-ml"
    assert len(plan["service_accounts"]) == 7 and len(plan["roles"]) == len(plan["bindings"])
    code, _, err = run(capsys, "-f", str(path), "init")
    assert code == 2 and "already exists" in err


def test_init_with_bad_arguments_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mlplane.toml"
    code, _, err = run(capsys, "-f", str(path), "init", "--project-id", "BAD_ID")
    assert code == 2 and "project.id" in err and not path.exists()
    code, _, err = run(capsys, "-f", str(path), "init", "--member", "bob")
    assert code == 2 and "not an IAM member" in err and not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_check_exit_codes(project_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = str(project_file)
    code, out, _ = run(
        capsys,
        "-f",
        f,
        "iam",
        "check",
        "--principal",
        "alice@acme.com",
        "experimentation.create-instances",
        "-r",
        "instance:nb-alice-1",
    )
    assert code == 0 and out.startswith("ALLOW")
    # Instance permissions hold on the action's own VMs only: a serving replica is out of reach.
    code, out, _ = run(
        capsys,
        *("-f", f, "iam", "check", "--principal", "alice@acme.com"),
        *("experimentation.create-instances", "-r", "instance:srv-sentiment-r1-abcd"),
    )
    assert code == 3 and "compute.instances.create" in out
    code, out, _ = run(
        capsys,
        "-f",
        f,
        "iam",
        "check",
        "--principal",
        "alice@acme.com",
        "storage.objects.create",
        "-r",
        "gs://acme-ml-mlplane-artifacts/model.pkl",
    )
    assert code == 3 and "mlplane ci trigger train" in out
    code, out, _ = run(
        capsys,
        "-f",
        f,
        "iam",
        "check",
        "--principal",
        "training",
        "--format",
        "json",
        "training.write-artifacts",
    )
    assert code == 0 and json.loads(out)["allowed"] is True


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["--principal", "alice@acme.com", "compute.instanes.create"],
            "closest: compute.instances.create",
        ),
        (["--principal", "nobody", "compute.instances.create"], "not an IAM member"),
        (
            ["--principal", "alice@acme.com", "-r", "bucket", "compute.instances.create"],
            "KIND:NAME",
        ),
        (
            ["--principal", "alice@acme.com", "-r", "gs://b/../x", "storage.objects.get"],
            "inside a bucket",
        ),
    ],
)
def test_check_bad_input(
    project_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, _, err = run(capsys, "-f", str(project_file), "iam", "check", *argv)
    assert code == 2 and needle in err


@pytest.mark.parametrize("flag", ["--as", "--as=alice@acme.com"])
def test_check_refuses_as(
    project_file: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    """`--as` named an identity in earlier versions: it is refused (exit 3, nothing decided),
    pointing at signing in; a what-if names its subject with `--principal`."""
    argv = [flag] if "=" in flag else [flag, "alice@acme.com"]
    code, out, err = run(
        capsys, "-f", str(project_file), "iam", "check", *argv, "experimentation.create-instances"
    )
    assert (code, out) == (3, "")
    assert err.startswith("error: `--as` is refused") and "mlplane auth login" in err


def test_explain(project_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "-f",
        str(project_file),
        "iam",
        "explain",
        "storage.objects.create",
        "--format",
        "json",
    )
    data = json.loads(out)
    # the artifact write, then the team state's writers (decision 1500), which need it on the
    # state's own bucket only
    uses = [u["action"] for u in data["uses"]]
    assert code == 0 and uses[0] == "training.write-artifacts"
    assert set(uses[1:]) == {
        "experimentation.write-state",
        "training.write-state",
        "serving.write-state",
    }
    code, out, _ = run(
        capsys,
        "-f",
        str(project_file),
        "iam",
        "explain",
        "roles/storage.objectAdmin",
        "--format",
        "json",
    )
    data = json.loads(out)
    assert code == 0 and data["kind"] == "predefined role" and data["not_needed"]
    code, _, err = run(capsys, "-f", str(project_file), "iam", "explain", "storage.objcts.create")
    assert code == 2 and "storage.objects.create" in err


def test_compare_covers_and_is_narrower(
    project_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlplane.iam.catalog import load_catalog

    code, out, _ = run(capsys, "-f", str(project_file), "iam", "compare", "--format", "json")
    rows = json.loads(out)
    roles = load_catalog().roles
    assert code == 0
    for r in rows:
        union = set().union(*(roles[n].permissions for n in r["predefined_roles"]))
        assert r["predefined_permissions"] == len(union)
        assert not r["uncovered"]
        assert r["permissions"] <= r["predefined_permissions"]
    totals = {r["subject"]: r["ratio"] for r in rows if r["kind"] == "holder"}
    # The broad identities are where predefined roles over-grant the most.
    assert totals["identity:serving"] <= 0.2 and totals["identity:cicd"] <= 0.2
    # Baselines are roles of each permission's own service, GA and general-purpose.
    plan = {b.role.role_id: b.role.permissions for b in plan_of(project_file).bindings}
    for r in rows:
        if r["kind"] != "role":
            continue
        services = {p.split(".")[0] for p in plan[r["subject"]]}
        assert not r["cross_service"], r
        for name in r["predefined_roles"]:
            assert name.removeprefix("roles/").split(".")[0] in services, (r["subject"], name)
            assert roles[name].stage == "GA", name
    bucket = next(r for r in rows if r["subject"] == "mlplane.experimentationUsers.bucketArtifacts")
    assert bucket["predefined_roles"] == ["roles/storage.objectViewer"]
    assert any(e.startswith("another service's role: ") for e in bucket["excluded"])
    assert any(e.startswith("basic role") for e in rows[-1]["excluded"])


def test_check_path_imports_neither_pydantic_nor_cloud_sdks(project_file: Path) -> None:
    code = (
        "import sys; from mlplane.cli.main import main; "
        f"rc = main(['-f', {str(project_file)!r}, 'iam', 'check', '--principal', 'training', "
        "'training.write-artifacts']); "
        "bad = [m for m in sys.modules if m.startswith(('pydantic', 'google', 'rich'))]; "
        "print('BAD', bad) if bad else None; sys.exit(rc or (1 if bad else 0))"
    )
    # The first run builds the cache (slow path); the second must take the fast path.
    subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    second = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert second.returncode == 0, second.stdout + second.stderr


def test_cache_follows_the_project_file(
    project_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = str(project_file)
    assert (
        run(
            capsys,
            "-f",
            f,
            "iam",
            "check",
            "--principal",
            "carol@acme.com",
            "experimentation.list-instances",
        )[0]
        == 3
    )
    project_file.write_text(
        project_file.read_text().replace(
            '"group:ml@acme.com"', '"group:ml@acme.com", "user:carol@acme.com"'
        )
    )
    assert (
        run(
            capsys,
            "-f",
            f,
            "iam",
            "check",
            "--principal",
            "carol@acme.com",
            "experimentation.list-instances",
        )[0]
        == 0
    )
