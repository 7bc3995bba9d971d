"""Crash recovery: kill the applying process at EVERY journal step of a revision deploy (and of a
teardown), then re-run: the result converges with nothing leaked and nothing created twice.

The children are forked processes (cheap) that `os._exit(137)` inside the journal hook, so no
cleanup code runs; the fake cloud and the state store live in SQLite files and survive them. One
test also uses a fresh interpreter, and one kills a child with SIGKILL while operations are in
flight.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_provider import (
    FakeClock,
    World,
    bootstrap_state,
    bundle,
    deploy_state,
    make_world,
    retire_state,
    run_child,
)

from mlplane.model.compute import FRONTEND_STACK, ResourceKey, UrlMap

HERE = Path(__file__).parent
STACKS = ["serving/sentiment/r1", FRONTEND_STACK]


def count_events(tmp: Path, setup: Callable[[World], None], desired: Any) -> int:
    events: list[Any] = []
    w = make_world(tmp, on_event=events.append)
    setup(w)
    events.clear()
    w.apply(desired).raise_for_failures()
    w.close()
    return len(events)


def boot(w: World) -> None:
    w.apply(bootstrap_state()).raise_for_failures()


def boot_and_deploy(w: World) -> None:
    boot(w)
    w.apply(deploy_state()).raise_for_failures()


def crash_child(directory: Path, scenario: str, crash_at: int, kind: str = "") -> int | None:
    proc = multiprocessing.get_context("fork").Process(
        target=run_child,
        args=(str(directory), scenario, "sentiment", "r1", crash_at),
        kwargs={"crash_kind": kind},
    )
    proc.start()
    proc.join(30)
    return proc.exitcode


def check_converged(w: World, *, deployed: bool) -> None:
    cloud = w.cloud.resources()
    revision = {r.key for r in bundle().resources}
    if deployed:
        assert revision <= set(cloud)
    else:
        assert not revision & set(cloud), "leaked: " + ", ".join(map(str, revision & set(cloud)))
    assert len(cloud) == 6 + (5 if deployed else 0)  # the front end, plus the revision
    url_map = cloud[ResourceKey("urlMap", "mlplane-urlmap")]
    assert isinstance(url_map, UrlMap)
    prefixes = [r.prefix for r in url_map.path_matchers[0].route_rules]
    assert prefixes == (["/v1/models/sentiment/"] if deployed else [])
    # The store records exactly what exists; nothing is left open.
    assert {k: r.spec for k, r in w.store.load().items()} == cloud
    assert w.engine.journal.open_intents(STACKS) == []
    # Nothing was ever created twice (a create needs a delete in between).
    alive: set[tuple[str, str]] = set()
    for kind, name, verb in w.cloud.effects():
        if verb == "create":
            assert (kind, name) not in alive, f"{kind}/{name} created twice"
            alive.add((kind, name))
        elif verb == "delete":
            alive.discard((kind, name))
    desired = deploy_state() if deployed else retire_state()
    assert w.engine.plan(desired).empty


SCENARIOS = {
    # name: (setup before the crash, scenario the child runs, what the re-run applies)
    "deploy-then-redeploy": (boot, "deploy", deploy_state, True),
    "deploy-then-give-up": (boot, "deploy", retire_state, False),
    "retire-then-retire": (boot_and_deploy, "retire", retire_state, False),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_kill_at_every_journal_step_then_rerun_converges(tmp_path: Path, name: str) -> None:
    setup, scenario, rerun, deployed = SCENARIOS[name]
    crashed_desired = deploy_state() if scenario == "deploy" else retire_state()
    total = count_events(tmp_path / "count", setup, crashed_desired)
    assert total == 7 * 5  # 7 mutations x (intent, called, operation, finished, recorded)
    template = tmp_path / "template"
    w = make_world(template)
    setup(w)
    w.close()
    for crash_at in range(1, total + 1):
        directory = tmp_path / f"crash-{crash_at}"
        directory.mkdir()
        for db in ("cloud.db", "state.db"):
            shutil.copyfile(template / db, directory / db)
        assert crash_child(directory, scenario, crash_at) == 137, f"crash point {crash_at}"
        w = make_world(directory, clock=FakeClock())
        report = w.apply(rerun())
        assert report.ok, f"crash point {crash_at}: {report.render()}"
        check_converged(w, deployed=deployed)
        w.close()


def test_recovery_rolls_forward_with_the_journaled_request(tmp_path: Path) -> None:
    """Crash right after the provider accepted a create, before the operation was journaled:
    the re-run re-sends the same requestId, and the provider answers with the same operation."""
    w = make_world(tmp_path)
    boot(w)
    w.close()
    assert crash_child(tmp_path, "deploy", 1, kind="called") == 137
    w = make_world(tmp_path)
    open_intents = w.engine.journal.open_intents(STACKS)
    creates = [i for i in open_intents if i.op == "create"]
    assert creates and all(i.operation is None for i in open_intents)
    with sqlite3.connect(w.cloud.path) as conn:
        accepted = {
            row[0]: row[1]
            for row in conn.execute("SELECT request_id, op FROM requests")
            if any(row[0] == i.request_id for i in creates)
        }
    assert accepted  # the provider took at least one of them before the crash
    report = w.apply(deploy_state())
    assert report.ok and len(report.recovered) == len(open_intents)
    with sqlite3.connect(w.cloud.path) as conn:
        for intent in creates:
            ops = conn.execute(
                "SELECT name FROM operations WHERE kind = ? AND target = ? AND verb = 'create'",
                (intent.key.kind, intent.key.name),
            ).fetchall()
            assert len(ops) == 1, f"{intent.key}: {ops}"  # no second operation was started
            if intent.request_id in accepted:
                assert ops[0][0] == accepted[intent.request_id]
    check_converged(w, deployed=True)
    w.close()


@pytest.mark.parametrize("crash_at", [4, 17, 33])
def test_fresh_interpreter_killed_midway(tmp_path: Path, crash_at: int) -> None:
    w = make_world(tmp_path)
    boot(w)
    w.close()
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); "
        "import fake_provider; fake_provider.child_main()"
    )
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1] / "src")}
    args = [str(tmp_path), "deploy", "sentiment", "r1", str(crash_at)]
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, timeout=60)
    assert proc.returncode == 137
    w = make_world(tmp_path)
    assert w.apply(deploy_state()).ok
    check_converged(w, deployed=True)
    w.close()


def _slow_child(directory: str) -> None:
    w = make_world(Path(directory), op_delay=0.05, wait=True)
    w.apply(deploy_state())
    os._exit(0)


def test_sigkill_while_operations_are_in_flight(tmp_path: Path) -> None:
    w = make_world(tmp_path, op_delay=0.05, wait=True)
    boot(w)
    w.close()
    proc = multiprocessing.get_context("fork").Process(target=_slow_child, args=(str(tmp_path),))
    proc.start()
    deadline = time.monotonic() + 10
    with sqlite3.connect(tmp_path / "state.db") as conn:
        while time.monotonic() < deadline:  # wait until the MIG's create is in flight
            row = conn.execute(
                "SELECT COUNT(*) FROM journal WHERE kind = 'instanceGroupManager'"
            ).fetchone()
            if row[0]:
                break
            time.sleep(0.002)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    w = make_world(tmp_path, op_delay=0.05, wait=True)
    report = w.apply(deploy_state())
    assert report.ok, report.render()
    assert report.recovered  # the MIG's open intent was rolled forward
    check_converged(w, deployed=True)
    w.close()
