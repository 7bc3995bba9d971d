"""Live state of backend services: endpoints, their keep-alive pools, least-outstanding choice.

An `EndpointState` owns the idle keep-alive connections to one replica and the set of its
connections in use. Removing an endpoint drains it: no new requests, idle connections closed,
in-flight ones may finish for `connection_draining_timeout_sec`, then are aborted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from .config import BackendService, Endpoint
from .metrics import ServiceMetrics
from .upstream import UpstreamConn, open_upstream


class EndpointState:
    __slots__ = (
        "_drain_timer",
        "active",
        "address",
        "draining",
        "ejected_until",
        "healthy",
        "host",
        "idle",
        "outstanding",
        "port",
    )

    def __init__(self, endpoint: Endpoint) -> None:
        self.host = endpoint.host
        self.port = endpoint.port
        self.address = endpoint.address
        self.healthy = endpoint.healthy
        self.draining = False
        self.outstanding = 0
        self.ejected_until = 0.0
        self.idle: deque[UpstreamConn] = deque()
        self.active: set[UpstreamConn] = set()
        self._drain_timer: asyncio.TimerHandle | None = None

    def take_idle(self, now: float, max_age: float) -> UpstreamConn | None:
        """The most recently used live pooled connection, or None. A pooled connection that
        received anything while idle (or was closed) is discarded, never reused."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if now - conn.idle_since < max_age and conn.usable():
                self.active.add(conn)
                return conn
            conn.transport.abort()
        return None

    async def connect(self, timeout: float, limit: int) -> UpstreamConn:
        conn = await open_upstream(self, timeout, limit)
        self.active.add(conn)
        return conn

    def release(self, conn: UpstreamConn, reusable: bool, now: float, max_idle: int) -> None:
        """Back to the pool when it can carry another request, else closed (aborted if broken)."""
        self.active.discard(conn)
        pool_it = reusable and self.healthy and not self.draining and len(self.idle) < max_idle
        if pool_it and conn.usable():
            conn.idle_since = now
            self.idle.append(conn)
            return
        if reusable:
            conn.transport.close()
        else:
            conn.transport.abort()

    def close_idle(self, older_than: float | None = None) -> None:
        idle = self.idle
        while idle and (older_than is None or idle[0].idle_since < older_than):
            idle.popleft().transport.close()

    def drain(self, timeout: float) -> None:
        """Stop new requests; let in-flight ones finish within `timeout` (0: abort them now)."""
        self.draining = True
        self.close_idle()
        if not self.active:
            return
        if timeout <= 0:
            self.abort_active()
        elif self._drain_timer is None:
            self._drain_timer = asyncio.get_running_loop().call_later(timeout, self.abort_active)

    def abort_active(self) -> None:
        for conn in list(self.active):
            conn.transport.abort()


class ServiceState:
    """One backend service as the proxy sees it; `live` holds the endpoints eligible for picks."""

    __slots__ = (
        "_rotations",
        "_rr",
        "config",
        "endpoints",
        "live",
        "metrics",
        "name",
        "retired",
        "timeout",
    )

    def __init__(self, config: BackendService, metrics: ServiceMetrics) -> None:
        self.name = config.name
        self.config = config
        self.timeout = config.timeout_sec
        self.metrics = metrics
        self.endpoints: dict[tuple[str, int], EndpointState] = {}
        self.live: tuple[EndpointState, ...] = ()
        self._rotations: list[tuple[EndpointState, ...]] = []
        self.retired = False  # removed from the config: requests routed to it are re-routed
        self._rr = 0
        self.set_endpoints(config.endpoints)

    def reconfigure(self, config: BackendService) -> None:
        endpoints_changed = config.endpoints != self.config.endpoints
        self.config = config
        self.timeout = config.timeout_sec
        if endpoints_changed:
            self.set_endpoints(config.endpoints)

    def set_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        """Reconcile membership and health; removed endpoints drain."""
        current: dict[tuple[str, int], EndpointState] = {}
        for ep in endpoints:
            key = (ep.host, ep.port)
            state = self.endpoints.get(key)
            if state is None:
                state = EndpointState(ep)
            elif state.healthy != ep.healthy:
                state.healthy = ep.healthy
                if not ep.healthy:
                    state.close_idle()
            current[key] = state
        for key, state in self.endpoints.items():
            if key not in current:
                state.drain(self.config.connection_draining_timeout_sec)
        self.endpoints = current
        self.live = live = tuple(s for s in current.values() if s.healthy)
        self._rotations = [live[i:] + live[:i] for i in range(len(live))]

    def drain_all(self) -> None:
        self.retired = True
        for state in self.endpoints.values():
            state.drain(self.config.connection_draining_timeout_sec)
        self.endpoints = {}
        self.live = ()
        self._rotations = []

    def pick(self, tried: Sequence[EndpointState], now: float) -> EndpointState | None:
        """Least outstanding requests among healthy endpoints not yet tried for this request;
        endpoints ejected after a failed connect only when nothing else is left."""
        live = self.live
        n = len(live)
        if n == 1:
            ep = live[0]
            return None if ep in tried else ep
        if n == 0:
            return None
        best: EndpointState | None = None
        fallback: EndpointState | None = None
        self._rr += 1
        for ep in self._rotations[self._rr % n]:  # ties go round-robin
            if ep in tried:
                continue
            if ep.ejected_until > now:
                if fallback is None or ep.outstanding < fallback.outstanding:
                    fallback = ep
            elif best is None or ep.outstanding < best.outstanding:
                best = ep
        return best or fallback
