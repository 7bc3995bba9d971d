"""Crash recovery: kill the applying process at EVERY named crash point of a revision deploy (and
of a teardown, and of a deploy followed by giving up), then re-run: the result converges with
nothing leaked, nothing created twice, the store equal to the cloud and no intent left open.

Crash points are named (kind, step, phase), learned from a counting run, and a child is killed
at each one by a hook that matches the name, so every point is reached whatever the order in
which the 8 apply threads emit their events; each child writes the point it died at to a marker
file, and the sweep asserts it reached 100 % of the points. A second sweep crashes the re-run
again while it rolls the first crash's intent forward. The children are forked processes that
`os._exit(137)` inside the hook (no cleanup runs); the fake cloud and the state store live in
SQLite files and survive them, and the re-run finds the cloud either as the child left it or
after the operations it left in flight have finished (time passing at the cloud).
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

from mlplane.engine.crashpoints import PHASES, CrashPoint, PointRecorder, reached
from mlplane.engine.journal import EventKind
from mlplane.model.compute import ResourceKey, UrlMap

HERE = Path(__file__).parent
DBS = ("cloud.db", "state.db")


def boot(w: World) -> None:
    w.apply(bootstrap_state()).raise_for_failures()


def boot_and_deploy(w: World) -> None:
    boot(w)
    w.apply(deploy_state()).raise_for_failures()


# name: (set-up before the crash, what the crashed child applies, what the re-run applies)
SCENARIOS: dict[str, tuple[Callable[[World], None], str, str]] = {
    "deploy-then-redeploy": (boot, "deploy", "deploy"),
    "deploy-then-give-up": (boot, "deploy", "retire"),
    "retire-then-retire": (boot_and_deploy, "retire", "retire"),
}
DESIRED = {"deploy": deploy_state, "retire": retire_state}


def learn_points(directory: Path, setup: Callable[[World], None], scenario: str) -> list[Any]:
    """The counting run: the named crash points of applying `scenario` after `setup`."""
    recorder = PointRecorder()
    w = make_world(directory, on_event=recorder)
    setup(w)
    recorder.clear()
    w.apply(DESIRED[scenario]()).raise_for_failures()
    w.close()
    return list(recorder.points)


def template(directory: Path, setup: Callable[[World], None]) -> Path:
    w = make_world(directory)
    setup(w)
    w.close()
    return directory


def copy_world(source: Path, target: Path) -> Path:
    """A copy of a world's files; a killed child leaves committed pages in the WAL, so the
    write-ahead logs are copied too (the shared-memory index is rebuilt from them)."""
    target.mkdir(parents=True)
    for db in DBS:
        for suffix in ("", "-wal"):
            if (source / (db + suffix)).exists():
                shutil.copyfile(source / (db + suffix), target / (db + suffix))
    return target


def crash_child(directory: Path, scenario: str, point: CrashPoint) -> str | None:
    """Run `scenario` in a forked child that dies at `point`; the point it died at, if any."""
    marker = directory / "crashed-at"
    proc = multiprocessing.get_context("fork").Process(
        target=run_child,
        args=(str(directory), scenario, "sentiment", "r1", point),
        kwargs={"marker": str(marker)},
    )
    proc.start()
    proc.join(30)
    assert proc.exitcode == 137, f"{point}: child exited {proc.exitcode}"
    return reached(marker)


def open_intents(w: World) -> list[Any]:
    with w.store.connection() as conn:
        return conn.execute("SELECT kind, name, op FROM journal WHERE status = 'open'").fetchall()


def check_converged(w: World, *, deployed: bool, why: object) -> None:
    cloud = w.cloud.resources()
    revision = {r.key for r in bundle().resources}
    if deployed:
        assert revision <= set(cloud), why
    else:
        assert not revision & set(cloud), f"{why}: leaked {sorted(map(str, revision & set(cloud)))}"
    assert len(cloud) == 6 + (5 if deployed else 0), why  # the front end, plus the revision
    url_map = cloud[ResourceKey("urlMap", "mlplane-urlmap")]
    assert isinstance(url_map, UrlMap)
    prefixes = [r.prefix for r in url_map.path_matchers[0].route_rules]
    assert prefixes == (["/v1/models/sentiment/"] if deployed else []), why
    # The store records exactly what exists; no intent is left open, in any stack.
    assert {k: r.spec for k, r in w.store.load().items()} == cloud, why
    assert open_intents(w) == [], why
    # Nothing was ever created twice (a create needs a delete in between).
    alive: set[tuple[str, str]] = set()
    for kind, name, verb in w.cloud.effects():
        if verb == "create":
            assert (kind, name) not in alive, f"{why}: {kind}/{name} created twice"
            alive.add((kind, name))
        elif verb == "delete":
            alive.discard((kind, name))
    assert w.engine.plan(deploy_state() if deployed else retire_state()).empty, why


def rerun(directory: Path, scenario: str, *, why: object, elapse: bool) -> int:
    """Re-run `scenario` (after the cloud finished what was in flight, with `elapse`) and check
    it converged; how many operations finished while nobody watched."""
    w = make_world(directory, clock=FakeClock())
    finished = w.cloud.elapse() if elapse else 0
    report = w.apply(DESIRED[scenario]())
    assert report.ok, f"{why}: {report.render()}"
    check_converged(w, deployed=scenario == "deploy", why=why)
    w.close()
    return finished


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_kill_at_every_named_crash_point_then_rerun_converges(tmp_path: Path, name: str) -> None:
    setup, scenario, again = SCENARIOS[name]
    points = learn_points(tmp_path / "count", setup, scenario)
    # 7 mutations x (intent, call, operation, finish, record), each named once.
    assert len(points) == len(set(points)) == 7 * 5
    assert {p.phase for p in points} == {PHASES[k] for k in EventKind if k is not EventKind.FAILED}
    base = template(tmp_path / "template", setup)
    hit: list[CrashPoint] = []
    finished_unwatched = 0
    for i, point in enumerate(points):
        crashed = copy_world(base, tmp_path / f"crash-{i}")
        assert crash_child(crashed, scenario, point) == str(point)
        hit.append(point)
        # The re-run finds the cloud as the child left it, or after its operations finished.
        later = copy_world(crashed, tmp_path / f"crash-{i}-later")
        rerun(crashed, again, why=point, elapse=False)
        finished_unwatched += rerun(later, again, why=f"{point}, ops finished", elapse=True)
    assert hit == points  # 100 % of the named points, each in its own crashed run
    assert finished_unwatched > 0  # some crashes left operations in flight
    print(f"\n{name}: {len(hit)}/{len(points)} named crash points reached")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_second_crash_while_recovering_converges(tmp_path: Path, name: str) -> None:
    """Crash at each point that leaves the step's intent open, then crash the re-run at each
    point of rolling that intent forward (learned from a counting re-run), then re-run again."""
    setup, scenario, again = SCENARIOS[name]
    points = [
        p for p in learn_points(tmp_path / "count", setup, scenario) if p.phase != "after-record"
    ]
    assert len(points) == 7 * 4
    base = template(tmp_path / "template", setup)
    pairs: list[tuple[CrashPoint, CrashPoint]] = []
    for i, first in enumerate(points):
        crashed = copy_world(base, tmp_path / f"c{i}")
        assert crash_child(crashed, scenario, first) == str(first)
        recorder = PointRecorder()
        w = make_world(copy_world(crashed, tmp_path / f"c{i}-count"), on_event=recorder)
        assert w.apply(DESIRED[again]()).ok
        w.close()
        recovery = [p for p in recorder.points if p.in_recovery and p.step == first.step]
        # The step's own intent was surely open: its roll-forward is always recorded.
        assert recovery and recovery[-1].phase == "recovery:after-record", (first, recovery)
        for j, second in enumerate(recovery):
            twice = copy_world(crashed, tmp_path / f"c{i}-{j}")
            assert crash_child(twice, again, second) == str(second)
            pairs.append((first, second))
            rerun(twice, again, why=f"{first} then {second}", elapse=False)
    steps = {p.step for p in points}
    assert {first.step for first, _ in pairs} == steps  # every step, every open phase
    assert {first for first, _ in pairs} == set(points)
    print(f"\n{name}: {len(pairs)} recovery crash points reached after {len(points)} first crashes")


def test_recovery_rolls_forward_with_the_journaled_request(tmp_path: Path) -> None:
    """Crash right after the provider accepted a create, before the operation was journaled:
    the re-run re-sends the same requestId, and the provider answers with the same operation."""
    w = make_world(tmp_path)
    boot(w)
    w.close()
    template_key = bundle().template.key
    point = CrashPoint(template_key.kind, f"create:{template_key}", "after-call")
    assert crash_child(tmp_path, "deploy", point) == str(point)
    w = make_world(tmp_path)
    open_now = w.engine.journal.open_intents([bundle().stack])
    (intent,) = [i for i in open_now if i.key == template_key]
    assert intent.op == "create" and intent.operation is None
    with sqlite3.connect(w.cloud.path) as conn:
        taken = conn.execute(
            "SELECT op FROM requests WHERE request_id = ?", (intent.request_id,)
        ).fetchone()
    assert taken is not None  # the provider took it before the crash
    report = w.apply(deploy_state())
    assert report.ok and len(report.recovered) == len(open_now)
    with sqlite3.connect(w.cloud.path) as conn:
        ops = conn.execute(
            "SELECT name FROM operations WHERE kind = ? AND target = ? AND verb = 'create'",
            (template_key.kind, template_key.name),
        ).fetchall()
    assert ops == [taken]  # no second operation was started: the same one was waited for
    check_converged(w, deployed=True, why=point)
    w.close()


@pytest.mark.parametrize("phase", ["after-intent", "after-operation", "after-record"])
def test_fresh_interpreter_killed_at_a_named_point(tmp_path: Path, phase: str) -> None:
    w = make_world(tmp_path)
    boot(w)
    w.close()
    mig = bundle().instance_group_manager.key
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); "
        "import fake_provider; fake_provider.child_main()"
    )
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1] / "src")}
    marker = tmp_path / "crashed-at"
    args = [str(tmp_path), "deploy", "sentiment", "r1", mig.kind, f"create:{mig}", phase]
    proc = subprocess.run([sys.executable, "-c", code, *args, str(marker)], env=env, timeout=60)
    assert proc.returncode == 137
    assert reached(marker) == str(CrashPoint(mig.kind, f"create:{mig}", phase))
    rerun(tmp_path, "deploy", why=phase, elapse=False)


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
    check_converged(w, deployed=True, why="SIGKILL")
    w.close()
