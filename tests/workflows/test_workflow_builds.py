"""Builds in the agent: a step runs warm (forked from the build worker, with mlplane already
imported) or cold (a new interpreter) with the same environment and identity; a failing step
fails its build with its log; a cancelled build's step is stopped, with what it started."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from mlplane.errors import PermissionDenied
from mlplane.workflows import training as T
from mlplane.workflows.ci import BuildFailed, read_build, run_trigger
from tests.harness import ADMIN
from tests.workflows.conftest import LocalProject, alive

QUIET = lambda *_: None  # noqa: E731

JOB = """
import json, os, sys, time
out = os.environ["MLPLANE_OUTPUT_DIR"]
with open(os.path.join(out, "env.json"), "w") as f:
    json.dump({"cwd": os.getcwd(), "ppid": os.getppid(), "pgid": os.getpgid(0),
               "sid": os.getsid(0), "metadata": os.environ.get("GCE_METADATA_HOST"),
               "build": os.environ.get("BUILD_ID"),
               "step_cmd": open(f"/proc/{os.getppid()}/cmdline", "rb").read().decode()}, f)
print("job ran", flush=True)
time.sleep(float(os.environ.get("SLEEP", "0")))
"""


def spec(lp: LocalProject, name: str, sleep: float = 0.0) -> Path:
    d = lp.root / "jobs"
    d.mkdir(exist_ok=True)
    (d / "job.py").write_text(JOB)
    path = d / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nentrypoint = "job.py"\nenv = {{ SLEEP = "{sleep}" }}\n'
        "max_run_duration_sec = 120\n"
    )
    return path


def worker_pid(lp: LocalProject) -> int | None:
    """The agent's warm build worker, from the process table."""
    agent = json.loads((lp.root / ".mlplane" / "agent" / "agent.json").read_text())["pid"]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == agent and b"warm_worker" in cmd and alive(int(entry)):
            return int(entry)
    return None


def wait_for_worker(lp: LocalProject, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = worker_pid(lp)
        if pid is not None:
            return pid
        time.sleep(0.05)
    raise AssertionError("no warm build worker")


def env_of(lp: LocalProject, build_id: str) -> dict[str, object]:
    from mlplane.data.artifacts import ArtifactStore

    store = ArtifactStore.open(lp.session.project_file)
    record = read_build(lp.session, build_id)
    assert record is not None
    [uri] = [o.uri for o in record.objects if o.uri.endswith("env.json")]
    data: dict[str, object] = json.loads(store.read_bytes(uri))
    return data


def test_a_step_runs_warm_or_cold_alike(local_project: LocalProject) -> None:
    lp = local_project
    worker = wait_for_worker(lp)
    time.sleep(1.0)  # it is ready once it has imported what steps import
    warm = T.run_ci(lp.session, spec(lp, "warm"), QUIET)
    os.kill(worker, signal.SIGKILL)  # the next step runs cold, and a new worker starts
    cold = T.run_ci(lp.session, spec(lp, "cold"), QUIET)
    w, c = env_of(lp, warm.build_id), env_of(lp, cold.build_id)
    # a warm step is a fork of the worker; a cold one is a new `python -m mlplane ci step`
    assert "warm_worker" in str(w["step_cmd"]) and "warm_worker" not in str(c["step_cmd"])
    assert "\x00ci\x00step\x00train" in str(c["step_cmd"])
    for env, run in ((w, warm), (c, cold)):
        assert env["build"] == run.build_id and env["metadata"]
        assert str(env["cwd"]).endswith("/workspace")
    step_w = read_build(lp.session, warm.build_id)
    step_c = read_build(lp.session, cold.build_id)
    assert step_w is not None and step_c is not None
    assert step_w.runs_as == step_c.runs_as == lp.session.email("training")
    assert wait_for_worker(lp) != worker  # replaced for the steps after


def test_a_failing_step_fails_the_build_with_its_log(local_project: LocalProject) -> None:
    lp = local_project
    path = spec(lp, "fails")
    path.write_text(path.read_text().replace('SLEEP = "0.0"', 'SLEEP = "not a number"'))
    relative = str(path.relative_to(lp.root))
    with pytest.raises(BuildFailed, match=r"(?s)FAILURE.*ValueError.*exited 1; nothing persisted"):
        run_trigger(lp.session, "train", {"_SPEC": relative}, QUIET)


def test_a_cancelled_build_stops_its_step_and_what_it_started(
    local_project: LocalProject,
) -> None:
    lp = local_project
    api = lp.team.api("alice@acme.com")
    relative = spec(lp, "long", sleep=60).relative_to(lp.root)
    op = api.call(
        "cloudbuild.projects.triggers.run",
        {"projectId": "acme-ml", "triggerId": "train"},
        {"substitutions": {"_SPEC": str(relative)}},
    )
    build_id = op["metadata"]["build"]["id"]
    get = {"projectId": "acme-ml", "id": build_id}
    log = Path(api.call("cloudbuild.projects.builds.get", get)["logUrl"].removeprefix("file://"))
    deadline = time.monotonic() + 30
    while "job ran" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)
    children = json.loads((lp.root / ".mlplane" / "agent" / "children.json").read_text())
    step = next(c["pid"] for c in children if alive(c["pid"]) and _is_build_step(c["pid"]))
    with pytest.raises(PermissionDenied, match=r"cloudbuild\.builds\.update"):
        api.call("cloudbuild.projects.builds.cancel", get, {})  # the invoker may not
    lp.team.api(ADMIN).call("cloudbuild.projects.builds.cancel", get, {})
    deadline = time.monotonic() + 15
    while api.call("cloudbuild.projects.builds.get", get)["status"] == "WORKING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.call("cloudbuild.projects.builds.get", get)["status"] == "CANCELLED"
    deadline = time.monotonic() + 10
    group = [p for p in _group(step)] or [step]
    while any(alive(p) for p in group) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in group), "the step or its job outlived the cancel"


def _is_build_step(pid: int) -> bool:
    try:
        return b"ci\x00step" in Path(f"/proc/{pid}/cmdline").read_bytes() or _forked_step(pid)
    except OSError:
        return False


def _forked_step(pid: int) -> bool:
    """A warm step's command line is its worker's; it leads its own session."""
    try:
        return b"warm_worker" in Path(f"/proc/{pid}/cmdline").read_bytes() and os.getsid(pid) == pid
    except OSError:
        return False


def _group(pgid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    out.append(int(entry))
            except OSError:
                continue
    return out
