"""Training runs for real: local runs as the user into scratch; remote runs on a training VM
that runs as training-adhoc and deletes itself through its own metadata token."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlplane.errors import ConfigError, PermissionDenied
from mlplane.providers.gcp.client import Unauthorized
from mlplane.workflows import training as T
from mlplane.workflows.instance_lists import TrainingRun, training_runs
from tests.local.local_helpers import processes
from tests.workflows.conftest import LocalProject, alive

QUIET = lambda *_: None  # noqa: E731
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sentiment" / "train.toml"


def spec_file(tmp: Path, name: str, body: str, script: str | None = None) -> Path:
    d = tmp / name
    d.mkdir()
    if script is not None:
        (d / "job.py").write_text(script)
    (d / "train.toml").write_text(body)
    return d / "train.toml"


def vm_exists(lp: LocalProject, name: str) -> bool:
    return T.instance_exists(lp.session, name)


def lean_runs(lp: LocalProject) -> list[TrainingRun]:
    """`train list`'s start-up path: the state index and one view of the local agent."""
    runs = training_runs(str(lp.session.project_file))
    assert runs is not None  # the local provider with its agent running
    return runs


def cli_on_start_up_path(lp: LocalProject, *command: str) -> str:
    """`mlplane COMMAND` in a fresh interpreter; fails if it imported pydantic, rich or a
    Google SDK (the start-up path of everyday commands, decision 0017)."""
    code = (
        "import sys; from mlplane.cli.main import main; "
        f"rc = main(['-f', {str(lp.session.project_file)!r}, *{list(command)!r}]); "
        "bad = [m for m in sys.modules if m.startswith(('pydantic', 'google', 'rich'))]; "
        "print('BAD', bad) if bad else None; sys.exit(rc or (1 if bad else 0))"
    )
    env = {**os.environ, **lp.team.env("alice@acme.com")}
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return shown.stdout


def test_local_run_as_the_user_writes_only_scratch(local_project: LocalProject) -> None:
    lp = local_project
    code, out = T.run_local(lp.session, T.load_spec(EXAMPLE), EXAMPLE.parent)
    assert code == 0 and (out / "model.json").is_file()
    assert out.is_relative_to(lp.root / ".mlplane" / "scratch")


def test_a_local_run_writes_to_a_new_or_empty_output_folder_only(
    local_project: LocalProject, tmp_path: Path
) -> None:
    lp = local_project
    spec = T.load_spec(EXAMPLE)
    code, out = T.run_local(lp.session, spec, EXAMPLE.parent, tmp_path / "model")
    assert code == 0 and out == tmp_path / "model" and (out / "model.json").is_file()
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ConfigError, match=r"--output: .* exists and is not an empty directory"):
        T.run_local(lp.session, spec, EXAMPLE.parent, out)
    assert sorted(p.name for p in out.iterdir()) == before  # nothing lost


def test_remote_run_deletes_its_own_vm_as_the_training_identity(
    local_project: LocalProject,
) -> None:
    lp = local_project
    s = lp.session
    run = T.run_remote(s, T.load_spec(EXAMPLE), EXAMPLE.parent, QUIET)
    assert run.instance.startswith("train-sentiment-")
    assert T.wait(s, run, 60) == 0
    assert not vm_exists(lp, run.instance)
    agent_log = (lp.root / ".mlplane" / "agent" / "agent.log").read_text()
    assert (
        f"delete instance/{run.instance} by serviceAccount:{s.email('training-adhoc')}" in agent_log
    )
    job_log = T.log_path(s, run.instance).read_text()
    assert "evaluation: accuracy" in job_log and "job exited rc=0" in job_log
    from mlplane.data.logs import LocalLogStore, LogQuery, read_entries

    entries = read_entries(LocalLogStore.for_project(s.project_file), LogQuery(run.instance))
    assert any("evaluation: accuracy" in (e.text_payload or "") for e in entries)
    [listed] = [r for r in T.list_runs(s) if r.instance == run.instance]
    assert (listed.state, listed.exit_code, listed.owner) == ("GONE", 0, "alice_acme-com")
    assert not [r for r in s.store.load().values() if r.stack == run.stack]


def test_a_crashing_job_still_removes_its_vm(local_project: LocalProject, tmp_path: Path) -> None:
    lp = local_project
    s = lp.session
    path = spec_file(
        tmp_path, "crash", 'name = "crash"\nentrypoint = "job.py"\n', "raise SystemExit(3)\n"
    )
    run = T.run_remote(s, T.load_spec(path), path.parent, QUIET)
    assert T.wait(s, run, 60) == 3
    assert not vm_exists(lp, run.instance)


def test_a_runner_killed_with_9_is_reaped_and_nothing_leaks(
    local_project: LocalProject, tmp_path: Path
) -> None:
    lp = local_project
    s = lp.session
    path = spec_file(
        tmp_path,
        "sleepy",
        'name = "sleepy"\nentrypoint = "job.py"\n',
        "import time\ntime.sleep(60)\n",
    )
    run = T.run_remote(s, T.load_spec(path), path.parent, QUIET)
    deadline = time.monotonic() + 10
    pid = None
    while pid is None and time.monotonic() < deadline:
        pid = next((r.pid for r in processes(lp.team) if r.name == run.instance), None)
        time.sleep(0.05)
    assert pid is not None
    time.sleep(0.5)  # the job has started under the runner
    assert [r.state for r in lean_runs(lp) if r.instance == run.instance] == ["RUNNING"]
    assert lean_runs(lp) == T.list_runs(s)
    assert run.instance in cli_on_start_up_path(lp, "train", "list")
    assert "no notebooks" in cli_on_start_up_path(lp, "notebook", "list")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        r.instance == run.instance and r.state == "EXITED" for r in T.list_runs(s)
    ):
        time.sleep(0.05)
    assert [r.state for r in lean_runs(lp) if r.instance == run.instance] == ["EXITED"]
    assert lean_runs(lp) == T.list_runs(s)
    assert T.reap(s) == [run.instance]
    assert [r.state for r in lean_runs(lp) if r.instance == run.instance] == ["GONE"]
    assert lean_runs(lp) == T.list_runs(s)
    assert not vm_exists(lp, run.instance)
    assert not alive(pid)


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ('name = "x"\nentrypoint = "m.py"\ncolour = 1\n', "colour", "unknown field"),
        ('name = "x"\nentrypoint = "no.such.module"\n', "entrypoint", "no Python module"),
        ('name = "x"\nentrypoint = "missing.py"\n', "entrypoint", "no script"),
        ('name = "Bad_Name"\nentrypoint = "json.tool"\n', "name", "lowercase"),
        (
            'name = "x"\nentrypoint = "json.tool"\nenv = { "A-B" = "1" }\n',
            "env",
            "environment variable",
        ),
        ("name = [\n", "", "not valid TOML"),
    ],
)
def test_bad_specs_name_file_and_field(tmp_path: Path, body: str, field: str, needle: str) -> None:
    path = tmp_path / "train.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        T.load_spec(path)
    assert (
        str(path) in str(info.value) and field in info.value.location and needle in str(info.value)
    )


def test_outsiders_cannot_start_training_vms(local_project: LocalProject) -> None:
    lp = local_project
    mallory = lp.fresh_session("mallory@evil.example")  # signed in here, but not a member
    with pytest.raises((PermissionDenied, Unauthorized)) as info:
        T.run_remote(mallory, T.load_spec(EXAMPLE), EXAMPLE.parent, QUIET)
    assert info.value.exit_code == 3 and "mallory@evil.example" in str(info.value)
    with pytest.raises(Unauthorized, match="not a member of project acme-ml"):
        mallory.api.call("compute.instances.list", {"project": "acme-ml", "zone": "us-central1-a"})
    assert not [r for r in T.list_runs(lp.session) if r.state == "RUNNING"]


def test_only_the_owner_cancels(local_project: LocalProject, tmp_path: Path) -> None:
    lp = local_project
    s = lp.session
    path = spec_file(
        tmp_path, "long", 'name = "long"\nentrypoint = "job.py"\n', "import time\ntime.sleep(60)\n"
    )
    run = T.run_remote(s, T.load_spec(path), path.parent, QUIET)
    with pytest.raises(PermissionDenied):
        T.cancel(lp.fresh_session("bob@acme.com"), run.instance)
    T.cancel(s, run.instance)
    assert not vm_exists(lp, run.instance)
