"""The crash-point machinery: names do not depend on how threads interleave events."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import NoReturn

import pytest

from mlplane.engine.crashpoints import CrashAt, CrashPoint, PointRecorder, reached
from mlplane.engine.journal import EventKind, JournalEvent
from mlplane.model.compute import ResourceKey

STEPS = [ResourceKey("healthCheck", f"hc-{i}") for i in range(8)]
PHASES = [EventKind.INTENT, EventKind.CALLED, EventKind.OPERATION, EventKind.FINISHED]


class Died(Exception):
    pass


def die() -> NoReturn:
    raise Died


def run_steps(hook: object, seed: int) -> list[ResourceKey]:
    """8 steps on 8 threads, each emitting its phases in order, started in a random order."""

    def step(key: ResourceKey) -> None:
        for i, kind in enumerate(PHASES):
            try:
                hook(JournalEvent(kind, "run", f"create:{key}", key, i))  # type: ignore[operator]
            except Died:
                died.append(key)
                return

    died: list[ResourceKey] = []
    order = STEPS[:]
    random.Random(seed).shuffle(order)
    threads = [threading.Thread(target=step, args=(k,)) for k in order]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return died  # the steps whose thread the hook stopped


def test_points_are_named_by_step_and_phase_whatever_the_order() -> None:
    seen = []
    for seed in range(5):
        recorder = PointRecorder()
        run_steps(recorder, seed)
        seen.append(set(recorder.points))
    assert all(s == seen[0] for s in seen) and len(seen[0]) == 8 * 4
    assert CrashPoint("healthCheck", "create:healthCheck/hc-3", "after-call") in seen[0]


@pytest.mark.parametrize("seed", range(5))
def test_crash_at_fires_at_its_point_only(tmp_path: Path, seed: int) -> None:
    target = CrashPoint("healthCheck", "create:healthCheck/hc-5", "after-operation")
    marker = tmp_path / "m"
    died = run_steps(CrashAt(target, die=die, marker=marker), seed)
    assert died == [ResourceKey("healthCheck", "hc-5")]
    assert (
        reached(marker) == str(target) == "(healthCheck, create:healthCheck/hc-5, after-operation)"
    )


def test_repeats_and_recovery_have_names_of_their_own() -> None:
    key = ResourceKey("urlMap", "m")
    recorder = PointRecorder()
    for recovering in (False, False, True):
        recorder(JournalEvent(EventKind.CALLED, "r", "update:urlMap/m", key, 0, recovering))
    assert [str(p) for p in recorder.points] == [
        "(urlMap, update:urlMap/m, after-call)",
        "(urlMap, update:urlMap/m, after-call) #2",
        "(urlMap, update:urlMap/m, recovery:after-call)",
    ]
    assert [p.in_recovery for p in recorder.points] == [False, False, True]
    assert reached(Path("/nonexistent/marker")) is None
