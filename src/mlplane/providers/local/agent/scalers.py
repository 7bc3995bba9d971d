"""The autoscaler's control loop in the agent: sample the load balancer's measurements for the
target group several times a second, and once a tick (default 1 s) feed the mean into the pure
`autoscaling.decide` and resize the group to its answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from mlplane.model.compute import Autoscaler, BackendService

from .autoscaling import LoadSample, ScalerState, ScalingDecision, decide, policy_of
from .groups import GroupRuntime

log = logging.getLogger(__name__)
SAMPLES_PER_TICK = 5


class ScalerLoop:
    def __init__(
        self,
        spec: Autoscaler,
        group: Callable[[], GroupRuntime | None],
        load: Callable[[str], tuple[float, int]],
        backends: Callable[[], list[BackendService]],
        tick_sec: float,
    ) -> None:
        self.spec = spec
        self.group = group
        self.load = load
        self.backends = backends
        self.tick_sec = tick_sec
        self.state = ScalerState()
        self.last: ScalingDecision | None = None
        self._in_flight: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def update(self, spec: Autoscaler) -> None:
        self.spec = spec

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            for _ in range(SAMPLES_PER_TICK):
                await asyncio.sleep(self.tick_sec / SAMPLES_PER_TICK)
                group = self.group()
                if group is not None:
                    self._in_flight.append(self.load(group.name)[0])
            try:
                self.tick(time.monotonic())
            except Exception:
                log.exception("autoscaler %s: tick failed", self.spec.name)

    def tick(self, now: float) -> ScalingDecision | None:
        group = self.group()
        if group is None:
            return None
        in_flight, total = self.load(group.name)
        samples, self._in_flight = self._in_flight or [in_flight], []
        sample = LoadSample(now, sum(samples) / len(samples), total)
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
