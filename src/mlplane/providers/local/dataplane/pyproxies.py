"""The listeners of the data plane served in this process by the Python load balancers
(`providers/local/lb`, the default: needs nothing installed)."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Sequence

from mlplane.errors import ConfigError
from mlplane.providers.local.lb import Endpoint, LoadBalancer

from .protocol import Listener

log = logging.getLogger(__name__)


class PythonProxies:
    def __init__(self) -> None:
        self.balancers: dict[str, LoadBalancer] = {}
        self._closing: set[asyncio.Task[None]] = set()  # listeners draining

    async def apply(
        self, listeners: Sequence[Listener], keep: Sequence[str], drain_sec: float
    ) -> dict[str, str]:
        errors: dict[str, str] = {}
        wanted = {li.name: li for li in listeners}
        for name in [n for n in self.balancers if n not in wanted and n not in keep]:
            gone = self.balancers.pop(name)
            task = asyncio.get_running_loop().create_task(gone.stop(drain_timeout_sec=drain_sec))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        for li in listeners:
            balancer = self.balancers.get(li.name)
            if balancer is not None and balancer.port != li.port:
                self.balancers.pop(li.name)
                await balancer.stop(drain_timeout_sec=drain_sec)
                balancer = None
            if balancer is None:
                errors[li.name] = await self._open(li)
            else:
                balancer.apply(li.url_map, li.services)
                errors[li.name] = ""
        return errors

    async def _open(self, li: Listener) -> str:
        balancer = LoadBalancer(li.url_map, li.services)
        try:
            await balancer.start(li.port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {li.port} on 127.0.0.1 is already in use"
            return f"cannot listen on 127.0.0.1:{li.port}: {exc}"
        self.balancers[li.name] = balancer
        log.info("listener %s on 127.0.0.1:%d", li.name, li.port)
        return ""

    def set_endpoints(self, listener: str, service: str, endpoints: Sequence[Endpoint]) -> None:
        balancer = self.balancers.get(listener)
        if balancer is None:
            return
        try:
            balancer.set_endpoints(service, endpoints)
        except ConfigError as exc:
            log.error("health of %s not applied: %s", service, exc)

    def loads(self, now: float) -> dict[str, tuple[int, int, float]]:
        out: dict[str, tuple[int, int, float]] = {}
        for balancer in self.balancers.values():
            for name, (in_flight, total, busy) in balancer.service_loads(now).items():
                prev = out.get(name, (0, 0, 0.0))
                out[name] = (prev[0] + in_flight, prev[1] + total, prev[2] + busy)
        return out

    def ports(self) -> dict[str, int]:
        return {name: b.port for name, b in self.balancers.items()}

    async def stop(self, drain_sec: float) -> None:
        stopping = [b.stop(drain_timeout_sec=drain_sec) for b in self.balancers.values()]
        await asyncio.gather(*stopping)
        self.balancers.clear()
