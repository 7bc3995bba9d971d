"""HTTP health checking of replicas: one probe (GET requestPath, HTTP 200 = success) and the
threshold state machine of a Compute Engine health check.

A target starts UNKNOWN; `healthyThreshold` consecutive successes make it HEALTHY,
`unhealthyThreshold` consecutive failures make it UNHEALTHY. The state machine is pure (tested
without sockets); `Prober` runs it on a schedule and reports every result.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from mlplane.model.compute import HealthCheck

# A new process gets this long to open its port before the first probe (then every interval).
FIRST_PROBE_DELAY = 0.2


class Health(StrEnum):
    UNKNOWN = "UNKNOWN"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"


@dataclass(frozen=True)
class HealthTrack:
    state: Health = Health.UNKNOWN
    successes: int = 0
    failures: int = 0

    def observe(self, ok: bool, check: HealthCheck) -> HealthTrack:
        if ok:
            n = self.successes + 1
            return HealthTrack(Health.HEALTHY if n >= check.healthy_threshold else self.state, n, 0)
        n = self.failures + 1
        state = Health.UNHEALTHY if n >= check.unhealthy_threshold else self.state
        return HealthTrack(state, 0, n)


async def probe(port: int, check: HealthCheck, host: str = "127.0.0.1") -> bool:
    """One HTTP probe within `timeoutSec`; True on status 200."""
    path = check.http_health_check.request_path
    vhost = check.http_health_check.host or f"{host}:{port}"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {vhost}\r\nUser-Agent: mlplane-health-check\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(check.timeout_sec):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
        parts = status_line.split(b" ", 2)
        return len(parts) >= 2 and parts[1] == b"200"
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        if writer is not None:
            writer.close()


class Prober:
    """Probes one port with one health check every `checkIntervalSec` until stopped, and calls
    `on_result(previous_state, track)` after each probe."""

    def __init__(
        self, port: int, check: HealthCheck, on_result: Callable[[Health, HealthTrack], None]
    ) -> None:
        self.port = port
        self.check = check
        self.track = HealthTrack()
        self._on_result = on_result
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> Health:
        return self.track.state

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def retarget(self, check: HealthCheck) -> None:
        """A new version of the check (interval, thresholds) applies from the next probe."""
        self.check = check

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(min(FIRST_PROBE_DELAY, self.check.check_interval_sec))
        while True:
            started = loop.time()
            ok = await probe(self.port, self.check)
            before = self.track.state
            self.track = self.track.observe(ok, self.check)
            self._on_result(before, self.track)
            delay = self.check.check_interval_sec - (loop.time() - started)
            await asyncio.sleep(max(delay, 0.0))

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        self.cancel()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
