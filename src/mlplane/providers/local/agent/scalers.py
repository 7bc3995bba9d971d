"""The autoscalers' control loop in the agent: one sampler for all of them. Once a tick
(default 1 s) each autoscaler reads its group's load in O(1) from the data plane's counters,
already polled by the agent (`Frontends.load_of`): the mean number of requests in flight over
the tick is the change of the busy request-seconds divided by the time between the readings.
The mean goes into the pure `autoscaling.decide`, and the group is resized to its answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from mlplane.model.compute import Autoscaler, BackendService
from mlplane.providers.local.dataplane.protocol import Load

from .autoscaling import LoadSample, ScalerState, ScalingDecision, decide, policy_of
from .groups import GroupRuntime

log = logging.getLogger(__name__)


class ScalerLoop:
    """One autoscaler: its spec, its decision state, and `tick` (driven by `Autoscaling`)."""

    def __init__(
        self,
        spec: Autoscaler,
        group: Callable[[], GroupRuntime | None],
        load: Callable[[str], tuple[Load, float]],
        backends: Callable[[], list[BackendService]],
    ) -> None:
        self.spec = spec
        self.group = group
        self.load = load
        self.backends = backends
        self.state = ScalerState()
        self.last: ScalingDecision | None = None
        self._prev: tuple[Load, float] | None = None

    def update(self, spec: Autoscaler) -> None:
        self.spec = spec

    def tick(self, now: float) -> ScalingDecision | None:
        group = self.group()
        if group is None:
            return None
        load, at = self.load(group.name)
        prev, self._prev = self._prev, (load, at)
        if prev is not None and at > prev[1] and load.busy >= prev[0].busy:
            in_flight = (load.busy - prev[0].busy) / (at - prev[1])
        else:
            in_flight = float(load.in_flight)
        sample = LoadSample(now, in_flight, load.total)
        policy = policy_of(self.spec, self.backends())
        decision = decide(policy, self.state, group.target_size, sample, now)
        self.state, self.last = decision.state, decision
        if decision.size != group.target_size:
            log.info("autoscaler %s: %s %d -> %d (load %s, recommendation %d)", self.spec.name,
                     decision.reason, group.target_size, decision.size, decision.load,
                     decision.recommendation)  # fmt: skip
            group.resize(decision.size)
        return decision

    def detail(self) -> str:
        d = self.last
        if d is None:
            return "waiting for the first measurement"
        load = "n/a" if d.load is None else f"{d.load:.2f}"
        return f"size {d.size}, load {load}, recommendation {d.recommendation}: {d.reason}"


class Autoscaling:
    """The one sampler: every `tick_sec`, each autoscaler's tick, in O(autoscalers)."""

    def __init__(self, tick_sec: float) -> None:
        self.tick_sec = tick_sec
        self.loops: dict[str, ScalerLoop] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, loop: ScalerLoop) -> None:
        self.loops[loop.spec.name] = loop
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, loop: ScalerLoop) -> None:
        self.loops.pop(loop.spec.name, None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_sec)
            now = time.monotonic()
            for loop in list(self.loops.values()):
                try:
                    loop.tick(now)
                except Exception:
                    log.exception("autoscaler %s: tick failed", loop.spec.name)
