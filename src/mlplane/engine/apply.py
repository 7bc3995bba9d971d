"""Parallel execution of a plan's dependency graph, and the report of what happened.

Independent steps run concurrently on a thread pool: provider SDKs (google-cloud-compute) and
the local provider are blocking, so threads give real overlap of their waits without wrapping
every call in `asyncio.to_thread`, and SQLite wants one connection per thread anyway. A step
starts as soon as the steps it depends on are done; a failed step fails only its dependants
(reported as skipped), independent branches carry on.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from enum import StrEnum

from mlplane.errors import MlplaneError, PermanentError, PermissionDenied
from mlplane.model.compute import ResourceKey

from .steps import Action, Op, Plan, Step


class StepStatus(StrEnum):
    DONE = "done"
    NOOP = "noop"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class StepResult:
    step_id: str
    key: ResourceKey
    action: Action
    op: Op
    status: StepStatus
    error: str | None = None
    error_type: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class ApplyReport:
    run_id: str
    plan: Plan
    results: tuple[StepResult, ...]
    recovered: tuple[str, ...] = ()  # intents of a dead process rolled forward first
    errors: tuple[BaseException, ...] = ()

    @property
    def ok(self) -> bool:
        return all(r.status in (StepStatus.DONE, StepStatus.NOOP) for r in self.results)

    @property
    def failed(self) -> tuple[StepResult, ...]:
        return tuple(r for r in self.results if r.status is StepStatus.FAILED)

    @property
    def skipped(self) -> tuple[StepResult, ...]:
        return tuple(r for r in self.results if r.status is StepStatus.SKIPPED)

    def result(self, step_id: str) -> StepResult:
        return next(r for r in self.results if r.step_id == step_id)

    def render(self) -> str:
        lines = [f"run {self.run_id}: {len(self.results)} steps"]
        lines += [f"recovered {r}" for r in self.recovered]
        for r in self.results:
            if r.status is not StepStatus.NOOP:
                why = f": {r.error}" if r.error else ""
                lines.append(f"{r.status:8} {r.step_id} ({r.seconds:.2f}s){why}")
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        """Raise the first failure (PermissionDenied as is), naming every failed step."""
        if self.ok:
            return
        first = self.errors[0] if self.errors else None
        if isinstance(first, PermissionDenied):
            raise first
        summary = "; ".join(f"{r.step_id}: {r.error}" for r in self.failed)
        blocked = len(self.skipped)
        raise PermanentError(
            f"apply {self.run_id} failed: {summary}"
            + (f" ({blocked} dependent step(s) not run)" if blocked else "")
        )


def execute(
    plan: Plan, run: Callable[[Step], None], *, max_workers: int = 8
) -> tuple[tuple[StepResult, ...], tuple[BaseException, ...]]:
    """Run `plan`'s executable steps in dependency order, independent ones in parallel."""
    steps = {s.id: s for s in plan.executable}
    waiting = {sid: {d for d in s.depends_on if d in steps} for sid, s in steps.items()}
    dependants: dict[str, list[str]] = defaultdict(list)
    for sid, deps in waiting.items():
        for d in deps:
            dependants[d].append(sid)
    results: dict[str, StepResult] = {
        s.id: StepResult(s.id, s.key, s.action, s.op, StepStatus.NOOP)
        for s in plan.steps
        if not s.executable
    }
    errors: list[BaseException] = []

    def timed(step: Step) -> float:
        start = time.monotonic()
        run(step)
        return time.monotonic() - start

    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="mlplane-apply") as pool:
        running: dict[Future[float], Step] = {}

        def submit(sid: str) -> None:
            running[pool.submit(timed, steps[sid])] = steps[sid]

        for sid in [sid for sid, deps in waiting.items() if not deps]:
            submit(sid)
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                step = running.pop(fut)
                exc = fut.exception()
                if exc is None:
                    results[step.id] = StepResult(
                        step.id, step.key, step.action, step.op, StepStatus.DONE,
                        seconds=fut.result(),
                    )  # fmt: skip
                    for nxt in dependants[step.id]:
                        waiting[nxt].discard(step.id)
                        if not waiting[nxt] and nxt not in results:
                            submit(nxt)
                    continue
                errors.append(exc)
                text = str(exc) if isinstance(exc, MlplaneError) else f"{type(exc).__name__}: {exc}"
                results[step.id] = StepResult(
                    step.id, step.key, step.action, step.op, StepStatus.FAILED, text,
                    type(exc).__name__,
                )  # fmt: skip
                _skip_dependants(step.id, steps, dependants, results)
    ordered = tuple(results[s.id] for s in plan.steps if s.id in results)
    return ordered, tuple(errors)


def _skip_dependants(
    failed: str,
    steps: dict[str, Step],
    dependants: dict[str, list[str]],
    results: dict[str, StepResult],
) -> None:
    queue = deque(dependants[failed])
    while queue:
        sid = queue.popleft()
        if sid in results:
            continue
        s = steps[sid]
        results[sid] = StepResult(
            sid, s.key, s.action, s.op, StepStatus.SKIPPED, f"not run: {failed} failed"
        )
        queue.extend(dependants[sid])
