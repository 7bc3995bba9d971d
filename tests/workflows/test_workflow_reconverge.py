"""`kill -9` of the agent, then `mlplane up`: the new agent re-converges on what the old one
recorded. Real agent, real replicas, real data plane, real notebook and training VMs.

- Serving under steady load: the service URL answers 200 again (within a test bound of 30 s,
  not a benchmark), the forwarding rule keeps its port, the data plane is adopted, every
  process of the old agent is gone (checked in /proc), `serve list` shows every revision; a
  second kill while the agent recovers still converges; so does a redeploy after a kill in
  the middle of a deploy.
- A notebook VM comes back RUNNING (scheduling.automaticRestart defaults to true); a remote
  training VM (automaticRestart false) ends TERMINATED with its whole process group gone,
  its log kept, and `train list`/`reap` handle it. A build running at the kill ends
  INTERNAL_ERROR, its job's process group gone.
- `mlplane down` removes what the agent recorded: `status` and `serve list` show the recorded
  revision as missing (not a failure), and deploying it again converges.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from mlplane.errors import MlplaneError
from mlplane.providers.local.control import AgentStartFailed, find_agent
from mlplane.providers.local.dataplane.files import DataPlaneFiles, read_info
from mlplane.providers.local.paths import AgentPaths, read_pid
from mlplane.workflows import training as T
from mlplane.workflows.quickstart import predict
from mlplane.workflows.serving import DeployRequest, deploy
from mlplane.workflows.serving_status import list_revisions
from mlplane.workflows.status import MISSING, project_status
from tests.harness import ADMIN, Team
from tests.local.local_helpers import processes
from tests.workflows.conftest import ALICE, LocalProject
from tests.workflows.test_workflow_builds import spec as build_spec

pytestmark = pytest.mark.timeout(180)
QUIET = lambda *_: None  # noqa: E731
ENDPOINTS = "models.endpoints.acme-ml.cloud.goog"
BOUND_SEC = 30.0  # a test bound, not a benchmark (bench/bench_reconverge.py measures)


# -- /proc -----------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields


def process_tree(root: int) -> dict[int, int]:
    """pid -> start time of `root` and every live descendant, from /proc."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            table[int(entry)] = (int(fields[1]), int(fields[19]))
    out: dict[int, int] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        if pid in table and pid not in out:
            out[pid] = table[pid][1]
            frontier += [p for p, (ppid, _) in table.items() if ppid == pid]
    return out


def group_of(leader: int) -> dict[int, int]:
    """pid -> start time of every live process in process group `leader`."""
    out = {}
    for entry in os.listdir("/proc"):
        if (
            entry.isdigit()
            and (fields := _stat(int(entry))) is not None
            and int(fields[2]) == leader
        ):
            out[int(entry)] = int(fields[19])
    return out


def still_alive(procs: dict[int, int]) -> list[int]:
    """Those of `procs` that still run (the same process: same start time)."""
    out = []
    for pid, start in procs.items():
        fields = _stat(pid)
        if fields is not None and int(fields[19]) == start:
            out.append(pid)
    return out


def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.02)


def answers(url: str) -> int:
    try:
        return predict(url)[0]
    except (OSError, MlplaneError):
        return 0


def kill_agent(team: Team) -> tuple[int, dict[int, int]]:
    """SIGKILL the agent; returns its pid and its process tree as it was."""
    handle = find_agent(team.project_file)
    assert handle is not None
    tree = process_tree(handle.info.pid)
    os.kill(handle.info.pid, signal.SIGKILL)
    wait_for(lambda: not still_alive({handle.info.pid: tree[handle.info.pid]}), 10, "agent gone")
    return handle.info.pid, tree


class Load:
    """A bounded loopback load: one thread, one request at a time, at most `seconds` long."""

    def __init__(self, url: str, seconds: float = 120.0) -> None:
        self.url = url
        self.codes: Counter[int] = Counter()
        self.last_200 = 0.0
        self._stop = threading.Event()
        self._deadline = time.monotonic() + seconds
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            code = answers(self.url)
            self.codes[code] += 1
            if code == 200:
                self.last_200 = time.monotonic()
            else:
                time.sleep(0.005)


# -- serving -----------------------------------------------------------------------------------


def test_kill_9_under_load_then_up_serves_again_with_nothing_left_behind(
    local_project: LocalProject,
) -> None:
    lp = local_project
    s = lp.session
    first = deploy(s, DeployRequest("omega", "r1", lp.v1), QUIET)
    deploy(s, DeployRequest("omega", "r2", lp.v2, traffic=50), QUIET)
    url = first.service_url + "predict"
    assert answers(url) == 200
    paths = AgentPaths.for_project(lp.team.project_file)
    dataplane = read_info(DataPlaneFiles(paths.root))
    assert dataplane is not None
    before = {r.revision: r for r in list_revisions(s.project_file) if r.service == "omega"}
    names = {rev: sorted(x.name for x in r.replicas) for rev, r in before.items()}

    with Load(url) as load:
        wait_for(lambda: load.codes[200] >= 20, 10, "steady load")
        old_pid, old_tree = kill_agent(lp.team)
        killed_at = time.monotonic()
        lp.team.up()
        wait_for(lambda: load.last_200 > killed_at, BOUND_SEC, "a 200 after the kill")
        served_before_stop = load.codes[200]
    assert served_before_stop > 20

    # Nothing of the old agent is left: its tree is gone, and no process of a group it had
    # recorded survives (the data plane was never its child: it is adopted, not restarted).
    assert still_alive(old_tree) == []
    after = read_info(DataPlaneFiles(paths.root))
    assert after is not None and after.pid == dataplane.pid
    assert "adopted data plane pid" in paths.log.read_text()
    opened = DataPlaneFiles(paths.root).log.read_text().count("listener mlplane-http-fr on")
    assert opened == 1, "the adopted data plane kept its listener: it never closed or reopened"
    # Every recorded revision is listed, none missing, with replicas of the same names.
    s = lp.fresh_session()  # as a new command would: the agent's API has a new port
    now = {r.revision: r for r in list_revisions(s.project_file) if r.service == "omega"}
    assert set(now) == {"r1", "r2"} and not any(r.missing or r.note for r in now.values()), now
    assert {r.revision: r.weight for r in now.values()} == {"r1": 50, "r2": 50}
    wait_for(
        lambda: all(
            x.health == "HEALTHY"
            for r in list_revisions(s.project_file)
            if r.service == "omega"
            for x in r.replicas
        ),
        BOUND_SEC,
        "healthy replicas",
    )
    assert {rev: sorted(x.name for x in r.replicas) for rev, r in now.items()} == names, (
        "a MIG recreates its instances with their names"
    )
    assert first.service_url == now["r1"].service_url  # the forwarding rule kept its port
    # Service Management still has the active config, its rollouts, the service enabled.
    admin = lp.team.api(ADMIN)
    service = {"serviceName": ENDPOINTS}
    assert admin.call("servicemanagement.services.getConfig", service)["name"] == ENDPOINTS
    rollouts = admin.call("servicemanagement.services.rollouts.list", service)["rollouts"]
    assert rollouts and all(r["status"] == "SUCCESS" for r in rollouts)
    usage = {"name": f"projects/acme-ml/services/{ENDPOINTS}"}
    assert admin.call("serviceusage.services.get", usage)["state"] == "ENABLED"
    assert read_pid(paths) != old_pid


def test_a_second_kill_during_recovery_still_converges(local_project: LocalProject) -> None:
    lp = local_project
    s = lp.fresh_session()
    [row] = [
        r for r in list_revisions(s.project_file) if r.revision == "r1" and r.service == "omega"
    ]
    url = row.service_url + "predict"
    paths = AgentPaths.for_project(lp.team.project_file)
    wait_for(lambda: answers(url) == 200, BOUND_SEC, "serving")

    # 1. killed while it starts: as soon as its pid file names it, before it publishes its API
    old_pid, _ = kill_agent(lp.team)

    def up() -> None:
        with contextlib.suppress(AgentStartFailed):  # it is killed while it starts
            lp.team.up()

    starting = threading.Thread(target=up)
    starting.start()
    wait_for(lambda: read_pid(paths) not in (None, old_pid), 30, "a new agent's pid file")
    second = read_pid(paths)
    assert second is not None
    tree = process_tree(second)
    os.kill(second, signal.SIGKILL)
    starting.join(60)
    assert still_alive({second: tree[second]}) == []

    # 2. killed once it is up, while its replicas start again
    lp.team.up()
    third = read_pid(paths)
    assert third is not None
    tree = process_tree(third)
    os.kill(third, signal.SIGKILL)
    wait_for(lambda: not still_alive({third: tree[third]}), 10, "third agent gone")

    lp.team.up()
    wait_for(lambda: answers(url) == 200, BOUND_SEC, "a 200 after two kills")
    assert still_alive(tree) == []
    revisions = {r.revision for r in list_revisions(lp.team.project_file) if r.service == "omega"}
    assert revisions == {"r1", "r2"}


def test_a_kill_in_the_middle_of_a_deploy_then_a_redeploy_converges(
    local_project: LocalProject,
) -> None:
    lp = local_project
    paths = AgentPaths.for_project(lp.team.project_file)
    mig = paths.resources / "instanceGroupManager" / "omega-r3-mig.json"
    failed: list[BaseException] = []

    def deploying() -> None:
        try:
            deploy(lp.fresh_session(), DeployRequest("omega", "r3", lp.v2, traffic=10), QUIET)
        except Exception as exc:  # the agent dies under it
            failed.append(exc)

    thread = threading.Thread(target=deploying)
    thread.start()
    wait_for(mig.exists, 60, "the deploy's group recorded by the agent")
    kill_agent(lp.team)
    thread.join(60)
    assert failed, "the deploy could not finish without its agent"
    lp.team.up()
    s = lp.fresh_session()
    result = deploy(s, DeployRequest("omega", "r3", lp.v2, traffic=10), QUIET)
    assert answers(result.revision_url + "predict") == 200
    listed = {r.revision: r for r in list_revisions(s.project_file) if r.service == "omega"}
    assert set(listed) == {"r1", "r2", "r3"} and listed["r3"].weight == 10
    assert len(listed["r3"].replicas) == 1


# -- instances ---------------------------------------------------------------------------------


def test_a_notebook_comes_back_and_a_training_vm_ends_terminated_whole(
    local_project: LocalProject, tmp_path: Path
) -> None:
    pytest.importorskip("jupyterlab", reason="the notebook extra (jupyterlab) is not installed")
    from mlplane.workflows import notebooks as N

    lp = local_project
    s = lp.fresh_session()
    notebook = N.create(s, "lab")
    spec_dir = tmp_path / "sleepy"
    spec_dir.mkdir()
    (spec_dir / "job.py").write_text("import time\ntime.sleep(120)\n")
    (spec_dir / "train.toml").write_text('name = "sleepy"\nentrypoint = "job.py"\n')
    run = T.run_remote(s, T.load_spec(spec_dir / "train.toml"), spec_dir, QUIET)
    runner = None

    def job_started() -> bool:
        nonlocal runner
        runs = {r.instance: r for r in T.list_runs(s)}
        views = [p for p in processes(lp.team) if p.name == run.instance and p.pid]
        if views and runs[run.instance].state == "RUNNING":
            runner = views[0].pid
        return runner is not None and len(group_of(runner)) >= 3  # runner, log pipe, job

    wait_for(job_started, 30, "the training job under its runner and log pipe")
    assert runner is not None
    job_group = group_of(runner)

    kill_agent(lp.team)
    # The runner died with the agent (PDEATHSIG); what it started did not, until the next agent.
    wait_for(lambda: runner not in still_alive(job_group), 10, "the runner gone")
    assert still_alive(job_group), "the job outlives its runner until the next agent starts"
    lp.team.up()
    assert still_alive(job_group) == []  # gone before `up` returned: swept, whole
    s = lp.fresh_session()

    runs = {r.instance: r for r in T.list_runs(s)}
    assert runs[run.instance].state == "EXITED"  # TERMINATED, not deleted: for `train reap`
    log = Path(runs[run.instance].log).read_text()
    assert "scheduling.automaticRestart is false: the instance stays TERMINATED" in log
    assert T.reap(s) == [run.instance]
    assert not T.instance_exists(s, run.instance)
    assert Path(runs[run.instance].log).is_file()  # its log is kept

    def back() -> bool:
        found = [n for n in N.list_notebooks(s) if n.instance == notebook.instance]
        return bool(found) and found[0].state == "RUNNING"

    wait_for(back, 90, "the notebook RUNNING again")
    [again] = [n for n in N.list_notebooks(s) if n.instance == notebook.instance]
    assert again.port == notebook.port  # a restarted VM keeps its address
    N.delete(s, "lab")


# -- builds ------------------------------------------------------------------------------------


def test_a_build_running_at_the_kill_ends_internal_error_with_its_job_gone(
    local_project: LocalProject,
) -> None:
    lp = local_project
    api = lp.team.api(ALICE)
    relative = build_spec(lp, "longer", sleep=120).relative_to(lp.root)
    op = api.call(
        "cloudbuild.projects.triggers.run",
        {"projectId": "acme-ml", "triggerId": "train"},
        {"substitutions": {"_SPEC": str(relative)}},
    )
    get = {"projectId": "acme-ml", "id": op["metadata"]["build"]["id"]}
    log = Path(api.call("cloudbuild.projects.builds.get", get)["logUrl"].removeprefix("file://"))
    wait_for(lambda: "job ran" in (log.read_text() if log.exists() else ""), 30, "the job runs")
    children = AgentPaths.for_project(lp.team.project_file).children
    groups = [group_of(int(c["pid"])) for c in json.loads(children.read_text())]
    job = {pid: start for g in groups for pid, start in g.items()}
    assert job

    kill_agent(lp.team)
    lp.team.up()
    assert still_alive(job) == []
    build = lp.team.api(ALICE).call("cloudbuild.projects.builds.get", get)
    assert build["status"] == "INTERNAL_ERROR"
    assert "killed" in build.get("statusDetail", "")


# -- down ----------------------------------------------------------------------------------


def test_after_down_recorded_revisions_show_as_missing_and_a_redeploy_converges(
    local_project: LocalProject,
) -> None:
    lp = local_project
    lp.team.down()
    lp.team.up()
    s = lp.fresh_session()
    with lp.team.acting(ALICE):
        status = project_status(lp.root / "mlplane.toml")
    rows = {(r.kind, r.name): r.detail for r in status.resources}
    assert rows[("instanceGroupManager", "omega-r1-mig")] == MISSING
    assert rows[("urlMap", "mlplane-urlmap")] == MISSING
    assert any("missing at the local agent" in n for n in status.notes)
    listed = {r.revision: r for r in list_revisions(s.project_file) if r.service == "omega"}
    assert set(listed) == {"r1", "r2", "r3"} and all(r.missing for r in listed.values())

    result = deploy(s, DeployRequest("omega", "r1", lp.v1), QUIET)
    assert answers(result.service_url + "predict") == 200
    listed = {r.revision: r for r in list_revisions(s.project_file) if r.service == "omega"}
    assert not listed["r1"].missing and listed["r2"].missing and listed["r3"].missing
