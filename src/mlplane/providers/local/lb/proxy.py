"""The load balancer: one listener on 127.0.0.1, the live config, and the timeout sweeper.

Drive it from the event-loop thread (the local agent's loop); `apply` and `set_endpoints` are
plain synchronous calls that swap state between two requests, so nothing in flight is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from time import monotonic

from mlplane.errors import ConfigError

from .client import ClientProtocol
from .config import BackendService, Endpoint, UrlMap, validate, validate_endpoints
from .conn import IDLE, ClientConn, Runtime
from .http import HttpError, RequestHead, parse_request_head
from .metrics import MetricsSnapshot, ServiceMetrics, render_prometheus, snapshot_service
from .pool import ServiceState
from .response import error_response, simple_response
from .routing import Router
from .settings import RESERVED_PREFIX, ProxySettings

log = logging.getLogger(__name__)

BIND_HOST = "127.0.0.1"
METRICS_PATH = (RESERVED_PREFIX + "metrics").encode()
HEALTH_PATH = (RESERVED_PREFIX + "healthz").encode()
_RESERVED = RESERVED_PREFIX.encode()
_SWEEP_SEC = 0.05


class LoadBalancer:
    """BackendService + UrlMap + TargetHttpProxy + ForwardingRule of the local provider."""

    def __init__(
        self,
        url_map: UrlMap,
        backend_services: Sequence[BackendService] = (),
        *,
        settings: ProxySettings | None = None,
    ) -> None:
        self.settings = settings or ProxySettings()
        self.settings.check()
        validate(url_map, backend_services)
        self._rt = Runtime(self.settings, self._reroute)
        self._url_map = url_map
        self._router = Router(url_map)
        self._metrics: dict[str, ServiceMetrics] = {}
        self._services: dict[str, ServiceState] = {}
        self._unrouted: dict[int, int] = {}
        self._refused = 0  # connections refused at the cap
        self._evicted = 0  # idle connections closed to make room at the cap
        self._clients: dict[ClientConn, None] = {}  # oldest first
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._port = 0
        self._install_services(backend_services)

    # -- configuration -------------------------------------------------------------------------

    @property
    def url_map(self) -> UrlMap:
        return self._url_map

    @property
    def backend_services(self) -> tuple[BackendService, ...]:
        return tuple(s.config for s in self._services.values())

    def apply(self, url_map: UrlMap, backend_services: Sequence[BackendService]) -> None:
        """Swap routing and services. Services that keep their name keep their live endpoints
        (and pushed health) unless their `endpoints` changed; removed services drain."""
        validate(url_map, backend_services)
        self._install_services(backend_services)
        self._url_map = url_map
        self._router = Router(url_map)

    def set_endpoints(self, service_name: str, endpoints: Sequence[Endpoint]) -> None:
        """Membership and health of one service's endpoints, pushed by their owner."""
        svc = self._services.get(service_name)
        if svc is None:
            raise ConfigError(
                "load balancer", "set_endpoints", f"unknown backend service '{service_name}'"
            )
        validate_endpoints(f"backend service '{service_name}'", endpoints)
        svc.set_endpoints(endpoints)

    def _install_services(self, backend_services: Sequence[BackendService]) -> None:
        new: dict[str, ServiceState] = {}
        for config in backend_services:
            state = self._services.get(config.name)
            if state is None:
                metrics = self._metrics.setdefault(config.name, ServiceMetrics())
                state = ServiceState(config, metrics)
            else:
                state.reconfigure(config)
            new[config.name] = state
        for name, state in self._services.items():
            if name not in new:
                state.drain_all()
                self._metrics.pop(name, None)  # requests still in flight count on, unseen
        self._services = new

    # -- metrics -------------------------------------------------------------------------------

    def metrics_snapshot(self) -> MetricsSnapshot:
        services = {}
        for name, m in self._metrics.items():
            svc = self._services.get(name)
            total = len(svc.endpoints) if svc else 0
            healthy = len(svc.live) if svc else 0
            services[name] = snapshot_service(m, total, healthy)
        return MetricsSnapshot(services=services, unrouted=dict(self._unrouted))

    def service_loads(self, now: float) -> dict[str, tuple[int, int, float]]:
        """(in flight, requests served, busy request-seconds) per backend service, cheaply."""
        return {
            name: (m.in_flight, m.total, m.busy_seconds(now)) for name, m in self._metrics.items()
        }

    def render_metrics(self) -> str:
        return render_prometheus(self.metrics_snapshot())

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def rt(self) -> Runtime:
        return self._rt

    @property
    def port(self) -> int:
        return self._port

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1:`port` (0: pick a free one); returns the bound port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientProtocol(self), BIND_HOST, port, backlog=1024, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return self._port

    async def stop(self, drain_timeout_sec: float = 30.0) -> None:
        """Stop accepting, let in-flight requests finish (up to the timeout), close everything."""
        self._rt.closing = True
        if self._server is not None:
            self._server.close()
        deadline = monotonic() + drain_timeout_sec
        while self._clients and monotonic() < deadline:
            for cc in list(self._clients):
                if cc.phase == IDLE:
                    cc.transport.abort()
            await asyncio.sleep(0.02)
        for cc in list(self._clients):
            cc.transport.abort()
        for svc in self._services.values():
            for ep in svc.endpoints.values():
                ep.close_idle()
                ep.abort_active()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> LoadBalancer:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(drain_timeout_sec=5.0)

    async def _sweep(self) -> None:
        """Fires expired deadlines (idle clients, upstream timeouts) and ages out idle pools."""
        next_pool_sweep = 0.0
        while True:
            await asyncio.sleep(_SWEEP_SEC)
            now = monotonic()
            header_cutoff = now - self.settings.client_header_timeout_sec
            for cc in list(self._clients):
                if cc.deadline < now:
                    cc.expire()
                elif cc.phase == IDLE and cc.idle_since < header_cutoff and cc.buffered():
                    cc.expire()  # a keep-alive connection sending a request head too slowly
            if now >= next_pool_sweep:
                next_pool_sweep = now + 1.0
                cutoff = now - self.settings.upstream_idle_timeout_sec
                for svc in self._services.values():
                    for ep in svc.endpoints.values():
                        ep.close_idle(older_than=cutoff)

    # -- the request path ----------------------------------------------------------------------

    def admit(self, cc: ClientConn) -> bool:
        """A new client connection: registered, unless at the cap with no idle one to close."""
        if len(self._clients) >= self.settings.max_connections and not self._evict_idle():
            self._refused += 1
            return False
        self._clients[cc] = None
        return True

    def forget(self, cc: ClientConn) -> None:
        self._clients.pop(cc, None)

    def _evict_idle(self) -> bool:
        """At the connection cap: close the connection idle longest, if one is idle."""
        for cc in self._clients:
            if cc.phase == IDLE:
                del self._clients[cc]
                cc.transport.abort()
                self._evicted += 1
                return True
        return False

    def prepare(
        self, cc: ClientConn, head: bytes, t0: float
    ) -> tuple[RequestHead, ServiceState] | bool:
        """Parse and route. Returns what to forward, or whether to keep the connection after a
        response the proxy made itself (bad request, no route, reserved path, too large)."""
        try:
            req = parse_request_head(head)
        except HttpError as exc:
            return self.reply_unrouted(cc, exc.status, exc.message, False)
        no_body = req.content_length == 0
        if req.path.startswith(_RESERVED):
            return self._internal(cc, req.path, req.method, req.keep_alive and no_body)
        target = self._router.route(req.host, req.path)
        if target is None:
            message = f"no route for host '{req.host.decode('latin-1')}' path "
            message += f"'{req.path.decode('latin-1')}' and the URL map has no default service"
            return self.reply_unrouted(cc, 404, message, req.keep_alive and no_body)
        svc = self._services[target if isinstance(target, str) else target.choose()]
        limit = self.settings.max_request_body_bytes
        if req.content_length > limit:
            cc.writer.write(error_response(413, f"request body exceeds {limit} bytes"))
            svc.metrics.observe(413, monotonic() - t0)
            return False
        return req, svc

    def _reroute(self, req: RequestHead) -> ServiceState | None:
        target = self._router.route(req.host, req.path)
        if target is None:
            return None
        return self._services[target if isinstance(target, str) else target.choose()]

    def reply_unrouted(self, cc: ClientConn, status: int, message: str, keep: bool) -> bool:
        keep = keep and not self._rt.closing
        self._unrouted[status] = self._unrouted.get(status, 0) + 1
        cc.writer.write(error_response(status, message, keep_alive=keep))
        return keep

    def _internal(self, cc: ClientConn, path: bytes, method: bytes, keep: bool) -> bool:
        keep = keep and not self._rt.closing
        if method not in (b"GET", b"HEAD"):
            return self.reply_unrouted(cc, 405, "reserved paths answer GET only", keep)
        if path == METRICS_PATH:
            body = self.render_metrics().encode()
            ctype = b"text/plain; version=0.0.4; charset=utf-8"
        elif path == HEALTH_PATH:
            body, ctype = b'{"status": "ok"}', b"application/json"
        else:
            reserved = RESERVED_PREFIX
            message = f"unknown path under the reserved prefix {reserved} (try {reserved}metrics)"
            return self.reply_unrouted(cc, 404, message, keep)
        response = simple_response(200, body, ctype, keep_alive=keep)
        if method == b"HEAD":
            response = response[: len(response) - len(body)]
        cc.writer.write(response)
        return keep
