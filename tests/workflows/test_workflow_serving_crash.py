"""kill -9 of the applying process at each named crash point of a deploy; a re-run converges,
with nothing duplicated and no process leaked. Real agent, real replicas, real load balancer.

The applying process is the `deploy` build's step (`deploy_step`, as the serving service account,
with a token the project's admin obtained for it); the re-run goes through the trigger, as a
user would run it again.

Crash points are named (kind, step, phase[, occurrence]) from a counting deploy and matched by
name in the child (mlplane.engine.crashpoints), so every one is reached whatever the order of
the apply threads; the sweep asserts it reached all of them."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

from mlplane.engine.crashpoints import CrashAt, CrashPoint, PointRecorder, reached, sigkill_self
from mlplane.engine.journal import Journal
from mlplane.workflows.quickstart import predict
from mlplane.workflows.serving import DeployRequest, deploy, deploy_step, undeploy
from mlplane.workflows.serving_status import list_revisions
from tests.harness import Team
from tests.local.local_helpers import processes
from tests.workflows.conftest import LocalProject, alive, supervised_pids

QUIET = lambda *_: None  # noqa: E731


def _deploy_and_die_at(team: Team, artifact: str, point: CrashPoint, marker: str) -> None:
    session = team.session("serving")
    session.engine_hook = CrashAt(point, die=sigkill_self, marker=marker)
    deploy_step(session, DeployRequest("kappa", "r1", Path(artifact)), QUIET)
    os._exit(0)


def replica_pids(lp: LocalProject) -> dict[str, list[int]]:
    views = processes(lp.team)
    return {
        mig: [v.pid for v in views if v.group == mig and v.pid]
        for mig in ("kappa-r0-mig", "kappa-r1-mig")
    }


def wait_until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_kill_9_at_every_named_crash_point_then_rerun_converges(
    local_project: LocalProject, tmp_path: Path
) -> None:
    lp = local_project
    s = lp.session
    deploy(s, DeployRequest("kappa", "r0", lp.v1), QUIET)
    recorder = PointRecorder()
    step = lp.fresh_session("serving")
    step.engine_hook = recorder
    deploy_step(step, DeployRequest("kappa", "r1", lp.v2), QUIET)
    undeploy(s, "kappa", "r1", QUIET)
    points = list(recorder.points)
    assert len(points) >= 30, points  # resources, then the traffic switch
    base_pids = set(supervised_pids(lp.root))

    ctx = multiprocessing.get_context("fork")
    hit: list[CrashPoint] = []
    for i, k in enumerate(points):
        marker = tmp_path / f"crashed-at-{i}"
        args = (lp.team, str(lp.v2), k, str(marker))
        child = ctx.Process(target=_deploy_and_die_at, args=args)
        child.start()
        child.join(60)
        assert child.exitcode == -signal.SIGKILL, (k, child.exitcode)
        assert reached(marker) == str(k)
        hit.append(k)

        session = lp.fresh_session()
        result = deploy(session, DeployRequest("kappa", "r1", lp.v2), QUIET)
        assert predict(result.revision_url + "predict")[0] == 200, k
        assert Journal(session.store).open_intents() == [], k
        listed = list_revisions(session.project_file)
        weights = {r.revision: r.weight for r in listed if r.service == "kappa"}
        assert weights == {"r0": 0, "r1": 100}, (k, weights)
        # at least its one replica (its autoscaler, max 3, may add one on a loaded machine)
        assert wait_until(lambda: len(replica_pids(lp)["kappa-r1-mig"]) >= 1), (k, replica_pids(lp))
        r1 = replica_pids(lp)["kappa-r1-mig"]

        undeploy(session, "kappa", "r1", QUIET)
        assert wait_until(lambda r1=r1: not any(alive(p) for p in r1)), (k, "r1 left behind")
        assert wait_until(
            lambda: (
                set(supervised_pids(lp.root)) <= base_pids | set(replica_pids(lp)["kappa-r0-mig"])
            )
        ), k
    assert hit == points  # 100 % of the named points, each in its own killed deploy
    print(f"\nserving deploy: {len(hit)}/{len(points)} named crash points reached")
    undeploy(s, "kappa", "r0", QUIET)
