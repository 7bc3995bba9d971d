"""Health checking in the data plane: one HTTP probe (GET requestPath, 200 = success), the
threshold state machine of a Compute Engine health check, and a prober per target.

A target starts UNKNOWN; `healthyThreshold` consecutive successes make it HEALTHY,
`unhealthyThreshold` consecutive failures make it UNHEALTHY. Until a target is first healthy,
its port is tried again after a twentieth of the time it has waited (2 to 10 ms) while nothing
listens (for `FAST_CONNECT_SEC`, then backing off), it is probed as soon as the port opens,
and from there on a back-off (10 ms doubling up to `checkIntervalSec`): a replica is in service
moments after it listens, every time. After that, every `checkIntervalSec`. A probe that timed
out only because the prober itself was late (its loop stalled, e.g. the process was stopped)
proves nothing about the replica: it is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

log = logging.getLogger(__name__)

FIRST_BACKOFF_SEC = 0.01
FAST_CONNECT_SEC = 5.0
"""For this long after a target appears, a refused connection is retried within 10 ms."""
QUICKEST_RETRY_SEC = 0.002
"""The first retries of a refused connection: a replica forked warm listens within ~10 ms."""
LATE_SEC = 0.25
"""A timed-out probe that ended this much later than its timeout was the prober's lateness."""


class Health(StrEnum):
    UNKNOWN = "UNKNOWN"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """What the data plane needs of a HealthCheck resource."""

    name: str
    request_path: str = "/"
    host: str = ""
    interval_sec: float = 5.0
    timeout_sec: float = 5.0
    healthy_threshold: int = 2
    unhealthy_threshold: int = 2


class Thresholds(Protocol):
    @property
    def healthy_threshold(self) -> int: ...
    @property
    def unhealthy_threshold(self) -> int: ...


@dataclass(frozen=True, slots=True)
class HealthTrack:
    state: Health = Health.UNKNOWN
    successes: int = 0
    failures: int = 0

    def observe(self, ok: bool, check: Thresholds) -> HealthTrack:
        if ok:
            n = self.successes + 1
            return HealthTrack(Health.HEALTHY if n >= check.healthy_threshold else self.state, n, 0)
        n = self.failures + 1
        state = Health.UNHEALTHY if n >= check.unhealthy_threshold else self.state
        return HealthTrack(state, 0, n)


REFUSED = "refused"  # nothing listens yet
OK = "ok"
FAILED = "failed"
LATE = "late"  # inconclusive: the prober was late, not the replica


async def probe(port: int, check: CheckSpec, host: str = "127.0.0.1") -> str:
    """One HTTP probe within the check's timeout: OK, FAILED, REFUSED or LATE."""
    loop = asyncio.get_running_loop()
    vhost = check.host or f"{host}:{port}"
    request = (
        f"GET {check.request_path} HTTP/1.1\r\nHost: {vhost}\r\n"
        "User-Agent: mlplane-health-check\r\nConnection: close\r\n\r\n"
    ).encode()
    writer: asyncio.StreamWriter | None = None
    started = loop.time()
    try:
        async with asyncio.timeout(check.timeout_sec):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
        parts = status_line.split(b" ", 2)
        return OK if len(parts) >= 2 and parts[1] == b"200" else FAILED
    except ConnectionRefusedError:
        return REFUSED
    except TimeoutError:
        late = loop.time() - started > check.timeout_sec + LATE_SEC
        return LATE if late else FAILED
    except (OSError, asyncio.IncompleteReadError):
        return FAILED
    finally:
        if writer is not None:
            writer.close()


class Prober:
    """Probes one target until cancelled; `on_change(track)` after each counted result that
    changed the track, except one more success of a target that stays healthy."""

    def __init__(
        self, port: int, check: CheckSpec, on_change: Callable[[HealthTrack], None]
    ) -> None:
        self.port = port
        self.check = check
        self.track = HealthTrack()
        self.ever_healthy = False
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def retarget(self, check: CheckSpec) -> None:
        self.check = check

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = FIRST_BACKOFF_SEC
        born = counted_at = loop.time()
        while True:
            started = loop.time()
            result = await probe(self.port, self.check)
            check = self.check
            # Not listening yet: a failure only once per interval (as a GCP prober sees it).
            warming = result == REFUSED and not self.ever_healthy
            if warming and started - counted_at >= check.interval_sec:
                result, counted_at = FAILED, started
            if result in (OK, FAILED) or (result == REFUSED and self.ever_healthy):
                track = self.track.observe(result == OK, check)
                if track.state is Health.HEALTHY:
                    self.ever_healthy = True
                before, self.track = self.track, track
                steady = track.state is Health.HEALTHY is before.state and not track.failures
                if track != before and not steady:  # a healthy target's successes go unsaid
                    self._on_change(track)
            if self.ever_healthy and result != LATE:
                delay = check.interval_sec - (loop.time() - started)
            elif result == REFUSED and started - born < FAST_CONNECT_SEC:
                # not listening yet: try again at once (a twentieth of the time waited so far)
                delay = min(max((started - born) / 20, QUICKEST_RETRY_SEC), FIRST_BACKOFF_SEC)
            else:  # warming up (or the probe was inconclusive): soon again, backing off
                delay, backoff = backoff, min(backoff * 2, check.interval_sec)
            await asyncio.sleep(max(delay, 0.0))

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        self.cancel()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
