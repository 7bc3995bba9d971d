"""kill -9 of the applying process at each journal event of a deploy; a re-run converges, with
nothing duplicated and no process leaked. Real agent, real replicas, real load balancer."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

from mlplane.engine.journal import JournalEvent
from mlplane.providers.local.control import find_agent
from mlplane.workflows.quickstart import predict
from mlplane.workflows.serving import DeployRequest, deploy, undeploy
from mlplane.workflows.serving_status import list_revisions
from mlplane.workflows.session import Session
from tests.workflows.conftest import LocalProject, alive, supervised_pids

QUIET = lambda *_: None  # noqa: E731


def _deploy_and_die_at(project_file: str, artifact: str, k: int) -> None:
    session = Session.open(project_file)
    seen = 0

    def hook(event: JournalEvent) -> None:
        nonlocal seen
        seen += 1
        if seen == k:
            os.kill(os.getpid(), signal.SIGKILL)

    session.engine_hook = hook
    deploy(
        session,
        DeployRequest("kappa", "r1", __import__("pathlib").Path(artifact)),
        session.user(),
        QUIET,
    )
    os._exit(0)


def replica_pids(lp: LocalProject) -> dict[str, list[int]]:
    handle = find_agent(lp.session.project_file)
    assert handle is not None
    out = {}
    for mig in ("kappa-r0-mig", "kappa-r1-mig"):
        try:
            out[mig] = [v.pid for v in handle.client().managed_instances(mig) if v.pid]
        except Exception:
            out[mig] = []
    return out


def wait_until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_kill_9_at_every_journal_event_then_rerun_converges(local_project: LocalProject) -> None:
    lp = local_project
    s, alice = lp.session, lp.session.user()
    deploy(s, DeployRequest("kappa", "r0", lp.v1), alice, QUIET)
    events: list[JournalEvent] = []
    s.engine_hook = events.append
    deploy(s, DeployRequest("kappa", "r1", lp.v2), alice, QUIET)
    s.engine_hook = None
    undeploy(s, "kappa", "r1", alice, QUIET)
    total = len(events)
    assert total >= 30, total  # both phases: resources, then the traffic switch
    base_pids = set(supervised_pids(lp.root))

    ctx = multiprocessing.get_context("fork")
    for k in range(1, total + 1):
        child = ctx.Process(target=_deploy_and_die_at, args=(str(s.project_file), str(lp.v2), k))
        child.start()
        child.join(60)
        assert child.exitcode == -signal.SIGKILL, (k, child.exitcode)

        session = lp.fresh_session()
        result = deploy(session, DeployRequest("kappa", "r1", lp.v2), alice, QUIET)
        assert predict(result.revision_url + "predict")[0] == 200, k
        weights = {r.revision: r.weight for r in list_revisions(session) if r.service == "kappa"}
        assert weights == {"r0": 0, "r1": 100}, (k, weights)
        assert wait_until(lambda: len(replica_pids(lp)["kappa-r1-mig"]) == 1), (k, replica_pids(lp))
        r1 = replica_pids(lp)["kappa-r1-mig"]

        undeploy(session, "kappa", "r1", alice, QUIET)
        assert wait_until(lambda r1=r1: not any(alive(p) for p in r1)), (k, "r1 left behind")
        assert wait_until(
            lambda: (
                set(supervised_pids(lp.root)) <= base_pids | set(replica_pids(lp)["kappa-r0-mig"])
            )
        ), k
    undeploy(s, "kappa", "r0", alice, QUIET)
