"""The load balancers in the agent: one `LoadBalancer` (the colleague's asyncio proxy) per
forwarding rule, listening on 127.0.0.1:portRange, configured from its target proxy's URL map
and the backend services that map routes to. `sync()` re-derives every configuration from the
records and pushes what changed: a new routing with `apply`, health or membership changes of
replicas with `set_endpoints`."""

from __future__ import annotations

import errno
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mlplane.errors import ConfigError
from mlplane.model.compute import (
    BackendService,
    ForwardingRule,
    ResourceKey,
    ResourceSpec,
    TargetHttpProxy,
    UrlMap,
    link_key,
)
from mlplane.providers.errors import InvalidRequest
from mlplane.providers.local import lb

from . import lb_config
from .groups import GroupRuntime
from .host import Host
from .store import ResourceStore

log = logging.getLogger(__name__)


@dataclass
class Listener:
    rule: ForwardingRule
    balancer: lb.LoadBalancer
    port: int
    pushed: dict[str, tuple[lb.Endpoint, ...]] = field(default_factory=dict)


class Frontends:
    def __init__(
        self, host: Host, store: ResourceStore, groups: Mapping[str, GroupRuntime]
    ) -> None:
        self.host = host
        self.store = store
        self.groups = groups
        self.listeners: dict[str, Listener] = {}

    # -- configuration -------------------------------------------------------------------------

    def _spec(self, kind: str, link: str) -> ResourceSpec | None:
        key = link_key(link)
        rec = self.store.get(ResourceKey(kind, key.name)) if key else None
        return rec.spec if rec else None

    def _endpoints(self, spec: BackendService) -> tuple[lb.Endpoint, ...]:
        check = lb_config.name_of(spec.health_checks[0]) if spec.health_checks else None
        out: list[lb.Endpoint] = []
        for backend in spec.backends:
            group = self.groups.get(lb_config.name_of(backend.group))
            if group is None or backend.capacity_scaler == 0:
                continue
            out += [lb.Endpoint("127.0.0.1", p, ok) for p, ok in group.endpoints(check)]
        return tuple(out)

    def config(self, rule: ForwardingRule) -> tuple[lb.UrlMap, list[lb.BackendService]] | None:
        proxy = self._spec(TargetHttpProxy.KIND, rule.target)
        if not isinstance(proxy, TargetHttpProxy):
            return None
        url_map = self._spec(UrlMap.KIND, proxy.url_map)
        if not isinstance(url_map, UrlMap):
            return None
        services = [lb_config.openapi_service(self.host.api_port)]
        for name in lb_config.service_names(url_map):
            rec = self.store.get(ResourceKey(BackendService.KIND, name))
            if rec is not None and isinstance(rec.spec, BackendService):
                services.append(lb_config.backend_service(rec.spec, self._endpoints(rec.spec)))
        return lb_config.url_map(url_map), services

    def check_url_map(self, spec: UrlMap) -> None:
        """Refuse a URL map the local load balancer could not serve (InvalidRequest)."""
        try:
            translated = lb_config.url_map(spec)
            stubs = [lb.BackendService(n) for n in lb_config.service_names(spec)]
            lb.validate(translated, [*stubs, lb_config.openapi_service(1)])
        except (ValueError, ConfigError) as exc:
            raise InvalidRequest(
                f"the local load balancer cannot serve it: {exc}", spec.key
            ) from exc

    # -- listeners -----------------------------------------------------------------------------

    async def open(self, rule: ForwardingRule) -> None:
        port = lb_config.parse_port(rule.port_range)
        cfg = self.config(rule)
        if cfg is None:
            raise InvalidRequest(f"{rule.key}: its target proxy or URL map is missing", rule.key)
        balancer = lb.LoadBalancer(cfg[0], cfg[1])
        try:
            await balancer.start(port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                msg = (
                    f"port {port} on 127.0.0.1 is already in use: forwarding rule '{rule.name}' "
                    f"(portRange '{rule.port_range}') cannot listen there; stop what uses port "
                    f"{port} or choose another portRange"
                )
            else:
                msg = f"forwarding rule '{rule.name}' cannot listen on 127.0.0.1:{port}: {exc}"
            raise InvalidRequest(msg, rule.key) from exc
        listener = Listener(rule, balancer, port)
        listener.pushed = {s.name: s.endpoints for s in cfg[1]}
        self.listeners[rule.name] = listener
        log.info("forwarding rule %s: listening on 127.0.0.1:%d", rule.name, port)

    def retarget(self, rule: ForwardingRule) -> None:
        self.listeners[rule.name].rule = rule
        self.sync()

    async def close(self, name: str) -> None:
        listener = self.listeners.pop(name, None)
        if listener is not None:
            await listener.balancer.stop(drain_timeout_sec=self.host.settings.lb_drain_sec)

    async def close_all(self) -> None:
        for name in list(self.listeners):
            await self.close(name)

    def sync(self) -> None:
        for listener in self.listeners.values():
            cfg = self.config(listener.rule)
            if cfg is None:
                continue
            url_map, services = cfg
            balancer = listener.balancer
            try:
                if balancer.url_map != url_map or _shape(balancer.backend_services) != _shape(
                    services
                ):
                    balancer.apply(url_map, services)
                    listener.pushed = {s.name: s.endpoints for s in services}
                    continue
                for s in services:
                    if listener.pushed.get(s.name) != s.endpoints:
                        balancer.set_endpoints(s.name, s.endpoints)
                        listener.pushed[s.name] = s.endpoints
            except ConfigError as exc:
                log.error("forwarding rule %s: configuration not applied: %s", listener.rule.name,
                          exc)  # fmt: skip

    # -- measurements --------------------------------------------------------------------------

    def load_of(self, group: str) -> tuple[float, int]:
        """(requests in flight, requests served) by the backend services of `group`."""
        names = set()
        for rec in self.store.of_kind(BackendService.KIND):
            spec = rec.spec
            if isinstance(spec, BackendService) and any(
                lb_config.name_of(b.group) == group for b in spec.backends
            ):
                names.add(spec.name)
        in_flight, total = 0.0, 0
        for listener in self.listeners.values():
            snap = listener.balancer.metrics_snapshot()
            for name in names & set(snap.services):
                in_flight += snap.services[name].in_flight
                total += snap.services[name].total_requests
        return in_flight, total

    def detail(self, name: str) -> str:
        listener = self.listeners.get(name)
        return f"listening on 127.0.0.1:{listener.port}" if listener else "not listening"


def _shape(services: Sequence[lb.BackendService]) -> list[tuple[str, float, float]]:
    return [(s.name, s.timeout_sec, s.connection_draining_timeout_sec) for s in services]
