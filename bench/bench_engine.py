"""Engine benchmarks.

(a) plan for 1,000 service revisions (5,000 resources + 1,000 route changes); goal <= 1 s.
(b) apply of one revision stack where every provider operation takes a fixed simulated delay,
    against the stack's critical path (sum of delays along its longest dependency chain);
    goal <= 1.2x. Run with the server-side wait capability and with client-side polling.

    PYTHONPATH=src python bench/bench_engine.py [--revisions 1000] [--delay 1.0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engine"))

from fake_provider import (
    ENDPOINTS,
    bootstrap_state,
    bundle,
    deploy_state,
    make_world,
)

from mlplane.engine import DesiredState, Plan, StackSpec
from mlplane.engine.plan import plan
from mlplane.engine.state import RecordedResource, StateStore, StateWrite
from mlplane.model.compute import (
    FRONTEND_STACK,
    ResourceKey,
    ResourceSpec,
    frontend,
    route_to,
)
from mlplane.providers.base import SYSTEM_CLOCK


def _record(stack: str, specs: tuple[ResourceSpec, ...]) -> dict[ResourceKey, RecordedResource]:
    return {s.key: RecordedResource(s.key, stack, s, 1) for s in specs}


def bench_plan(revisions: int) -> None:
    bundles = [bundle(f"model{i}", "r1") for i in range(revisions)]
    stacks = tuple(
        StackSpec(b.stack, b.resources, (route_to(f"model{i}", [(b, 100)]),))
        for i, b in enumerate(bundles)
    )
    desired = DesiredState(stacks)
    fe = frontend(endpoints_service=ENDPOINTS)
    booted = _record(FRONTEND_STACK, fe.resources)

    def timed(label: str, recorded: dict[ResourceKey, RecordedResource]) -> Plan:
        plan(desired, recorded)  # warm-up
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            p = plan(desired, recorded)
            runs.append(time.perf_counter() - start)
        print(
            f"  plan {revisions} revisions, {label}: {min(runs):.3f} s best of 3 "
            f"({len(p.executable)} executable steps of {len(p.steps)})"
        )
        return p

    print(f"(a) plan: {revisions * 5} resources, {revisions} route changes (goal <= 1 s)")
    timed("all new", booted)
    applied = dict(booted)
    url_map = fe.url_map.with_changes(
        [route_to(f"model{i}", [(b, 100)]) for i, b in enumerate(bundles)]
    )
    for b in bundles:
        applied.update(_record(b.stack, b.resources))
    applied.update(_record(FRONTEND_STACK, (url_map,)))
    steady = timed("already applied (no-op)", applied)
    assert steady.empty
    extra = bundle("newmodel", "r1")
    one_more = DesiredState((*stacks, StackSpec(extra.stack, extra.resources)))
    start = time.perf_counter()
    p = plan(one_more, applied)
    print(
        f"  plan {revisions} applied + 1 new revision: {time.perf_counter() - start:.3f} s "
        f"({len(p.executable)} executable steps)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(Path(tmp) / "state.db")
        with store.transaction() as conn:
            for rec in applied.values():
                store.apply_write(conn, StateWrite(rec.key, rec.stack, rec.spec, None))
        start = time.perf_counter()
        loaded = store.load()
        print(
            f"  (for reference) loading those {len(loaded)} rows from SQLite: "
            f"{time.perf_counter() - start:.3f} s"
        )
        store.close()


def critical_path(p: Plan, delay: float) -> float:
    """Longest chain of provider operations through the plan's dependencies, in seconds."""
    finish: dict[str, float] = {}
    for step in p.steps:  # topological order
        start = max((finish[d] for d in step.depends_on if d in finish), default=0.0)
        finish[step.id] = start + (delay if step.op in ("create", "update", "delete") else 0.0)
    return max(finish.values(), default=0.0)


def bench_apply(delay: float, *, wait: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        w = make_world(Path(tmp), op_delay=delay, wait=wait, clock=SYSTEM_CLOCK)
        w.apply(bootstrap_state()).raise_for_failures()
        desired = deploy_state("sentiment", "r1")
        preview = w.engine.plan(desired)
        cp = critical_path(preview, delay)
        ops = len(preview.executable)
        start = time.perf_counter()
        report = w.apply(desired)
        wall = time.perf_counter() - start
        report.raise_for_failures()
        w.close()
    how = "server-side wait" if wait else "client-side polling"
    print(
        f"  {how}: {ops} operations x {delay:g} s; critical path {cp:.2f} s "
        f"(sequential {ops * delay:.2f} s); apply took {wall:.2f} s -> ratio {wall / cp:.3f}"
    )
    return wall / cp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--revisions", type=int, default=1000)
    ap.add_argument("--delay", type=float, default=1.0, help="seconds per provider operation")
    ap.add_argument("--skip-apply", action="store_true")
    args = ap.parse_args()
    bench_plan(args.revisions)
    if args.skip_apply:
        return
    print(f"(b) apply one revision stack, {args.delay:g} s per operation (goal <= 1.2x)")
    bench_apply(args.delay, wait=True)
    bench_apply(args.delay, wait=False)


if __name__ == "__main__":
    main()
