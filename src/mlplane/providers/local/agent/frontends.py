"""The agent's side of the data plane (see `providers/local/dataplane`): it derives one whole
configuration from the records (a listener per forwarding rule, configured from its target
proxy's URL map and the backend services that map routes to; the replicas each health check
must probe), sends it when it changed, and polls back what the data plane saw: health
transitions (fed to the groups, for autohealing and status) and per-backend-service load
counters (for the autoscalers).

One task pushes after each change (`_link`), another long-polls (`_listen`): a health change
reaches the agent moments after the data plane saw it, and a poll's cost follows what changed,
not how many revisions exist. Traffic and probes never wait on the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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
from mlplane.providers.local.dataplane.client import DataPlaneClient, DataPlaneError
from mlplane.providers.local.dataplane.haproxy.config import Globals, render
from mlplane.providers.local.dataplane.protocol import (
    DataPlaneConfig,
    Listener,
    Load,
    PollReply,
    ProbeTarget,
)

from . import lb_config
from .groups import GroupRuntime
from .health import Health, HealthTrack, check_spec
from .host import Host
from .store import ResourceStore

log = logging.getLogger(__name__)
POLL_SEC = 0.25
RETRY_SEC = 0.5
ADOPT_GRACE_SEC = 60.0
"""An adopted data plane's listeners this agent has no rule for stay open this long, unless
`converged()` says sooner that the agent has recovered all it will."""


@dataclass(frozen=True)
class EndpointHealth:
    """One entry of `backendServices.getHealth`'s healthStatus."""

    group: str
    instance: str
    port: int
    health_state: str  # HEALTHY, UNHEALTHY or UNKNOWN


@dataclass
class Rule:
    rule: ForwardingRule
    port: int


class Frontends:
    def __init__(
        self, host: Host, store: ResourceStore, groups: Mapping[str, GroupRuntime]
    ) -> None:
        self.host = host
        self.store = store
        self.groups = groups
        self.listeners: dict[str, Rule] = {}
        self.dataplane = DataPlaneClient(host.paths.root, host.settings.data_plane or "python")
        self.loads: dict[str, Load] = {}
        self.loads_at = 0.0
        self._backends_of: dict[str, list[BackendService]] = {}  # group -> its backend services
        self._pushed: DataPlaneConfig | None = None
        self._dirty = True  # the records changed since the last push
        self._pid = 0
        self._converged_at: float | None = None  # keep inherited listeners until then
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._push_lock = asyncio.Lock()
        # Listeners of front ends that are not forwarding rules (Cloud Run services' own).
        self.extra: Callable[[], Sequence[Listener]] = lambda: ()

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
            out += [lb.Endpoint("127.0.0.1", p, True, check) for p, _ in group.endpoints(None)]
        return tuple(out)

    def _listener(self, entry: Rule) -> Listener | None:
        proxy = self._spec(TargetHttpProxy.KIND, entry.rule.target)
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
        return Listener(entry.rule.name, entry.port, lb_config.url_map(url_map), tuple(services))

    def config(self) -> DataPlaneConfig:
        """The whole data-plane configuration the records describe now."""
        listeners = []
        for entry in self.listeners.values():
            listener = self._listener(entry)
            if listener is not None:
                listeners.append(listener)
        listeners.extend(self.extra())
        checks = {}
        targets = []
        for group in self.groups.values():
            for name, check in group.checks.items():
                checks[name] = check_spec(check)
            targets += [ProbeTarget(*t) for t in group.probe_targets()]
        keep: tuple[str, ...] = ()
        if self._converged_at is None or time.monotonic() < self._converged_at:
            named = {*self.listeners, *(li.name for li in listeners)}  # not kept: configured
            keep = tuple(n for n in self.dataplane.inherited if n not in named)
        return DataPlaneConfig(
            tuple(listeners),
            tuple(checks.values()),
            tuple(targets),
            keep=keep,
            drain_sec=self.host.settings.lb_drain_sec,
        )

    def converged(self) -> None:
        """The agent recovered every resource it will (after a restart): listeners of an
        adopted data plane that no forwarding rule claims may now close. A data plane that a
        killed agent left is adopted now even if no rule needs it, so that it closes them."""
        self._converged_at = time.monotonic()
        self.sync()
        if self._task is None and self.dataplane.running():
            self._task = asyncio.get_running_loop().create_task(self._link())

    def check_url_map(self, spec: UrlMap) -> None:
        """Refuse a URL map the local load balancer could not serve (InvalidRequest)."""
        try:
            translated = lb_config.url_map(spec)
            stubs = (*(lb.BackendService(n) for n in lb_config.service_names(spec)),
                     lb_config.openapi_service(1))  # fmt: skip
            lb.validate(translated, stubs)
            if self.dataplane.proxy == "haproxy":  # what haproxy cannot be given verbatim
                render([Listener("check", 1, translated, stubs)], Globals("/dev/null"))
        except (ValueError, ConfigError) as exc:
            raise InvalidRequest(
                f"the local load balancer cannot serve it: {exc}", spec.key
            ) from exc

    # -- listeners -----------------------------------------------------------------------------

    async def open(self, rule: ForwardingRule) -> None:
        port = lb_config.parse_port(rule.port_range)
        entry = Rule(rule, port)
        if self._listener(entry) is None:
            raise InvalidRequest(f"{rule.key}: its target proxy or URL map is missing", rule.key)
        self.listeners[rule.name] = entry
        self._dirty = True
        try:
            errors = await self._push()
        except DataPlaneError as exc:
            self.listeners.pop(rule.name, None)
            raise InvalidRequest(f"forwarding rule '{rule.name}': {exc}", rule.key) from exc
        error = errors.get(rule.name, "")
        if error:
            self.listeners.pop(rule.name, None)
            self._dirty = True
            with contextlib.suppress(DataPlaneError):
                await self._push()
            if "already in use" in error:
                error = (
                    f"{error}: forwarding rule '{rule.name}' (portRange '{rule.port_range}') "
                    f"cannot listen there; stop what uses port {port} or choose another portRange"
                )
            else:
                error = f"forwarding rule '{rule.name}': {error}"
            raise InvalidRequest(error, rule.key)
        log.info("forwarding rule %s: listening on 127.0.0.1:%d", rule.name, port)

    def retarget(self, rule: ForwardingRule) -> None:
        self.listeners[rule.name].rule = rule
        self.sync()

    async def close(self, name: str) -> None:
        if self.listeners.pop(name, None) is not None:
            self._dirty = True
            with contextlib.suppress(DataPlaneError):
                await self._push()

    async def close_all(self) -> None:
        """The agent stops: stop the data plane too (it drains in-flight requests)."""
        self.listeners.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.dataplane.in_use:
            await self.dataplane.shutdown()

    def sync(self) -> None:
        """Something changed: re-derive the configuration and send it if it differs."""
        index: dict[str, list[BackendService]] = {}
        for spec in self.store.specs(BackendService.KIND):
            if isinstance(spec, BackendService):
                for b in spec.backends:
                    index.setdefault(lb_config.name_of(b.group), []).append(spec)
        self._backends_of = index
        self._dirty = True
        if self._task is None and (
            self.listeners or self.extra() or any(g.checks for g in self.groups.values())
        ):
            self._task = asyncio.get_running_loop().create_task(self._link())
        self._wake.set()

    async def push_now(self) -> dict[str, str]:
        """Send the configuration now; listener name -> error for those that failed."""
        self._dirty = True
        return await self._push()

    async def _push(self) -> dict[str, str]:
        async with self._push_lock:
            await self.dataplane.ensure()
            if self.dataplane.info is not None and self.dataplane.info.pid != self._pid:
                self._pid, self._pushed = self.dataplane.info.pid, None  # a new data plane
                if self.dataplane.adopted and self._converged_at is None:
                    self._converged_at = time.monotonic() + ADOPT_GRACE_SEC
            if not self._dirty and self._pushed is not None:
                return {}
            self._dirty = False
            config = self.config()
            if config == self._pushed:
                return {}
            errors = await self.dataplane.apply(config)
            self._pushed = config
            return errors

    async def _link(self) -> None:
        """Push after each change; the reports come in on their own task (`_listen`)."""
        listener = asyncio.get_running_loop().create_task(self._listen())
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                try:
                    await self._push()
                except DataPlaneError as exc:
                    log.warning("data plane: %s", exc)
                    self._pushed, self._dirty = None, True
                    await asyncio.sleep(RETRY_SEC)
                    self._wake.set()
                except ConfigError as exc:
                    log.error("data plane configuration not applied: %s", exc)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _listen(self) -> None:
        """Long polls: a health change reaches the groups moments after the data plane saw it,
        the loads at least every POLL_SEC."""
        while True:
            if self.dataplane.info is None:  # not started or adopted yet
                await asyncio.sleep(0.02)
                continue
            try:
                self._absorb(await self.dataplane.poll(wait=POLL_SEC))
            except DataPlaneError as exc:
                log.warning("data plane: %s", exc)
                await asyncio.sleep(RETRY_SEC)
            pushed, until = self._pushed, self._converged_at
            if pushed is not None and pushed.keep and until and time.monotonic() >= until:
                self._dirty = True  # the grace for inherited listeners is over
                self._wake.set()

    def _absorb(self, reply: PollReply) -> None:
        self.loads.update(reply.loads)
        self.loads_at = reply.at
        changed = False
        for h in reply.health:
            group = self.groups.get(self._group_of(h.owner))
            if group is not None:
                track = HealthTrack(h.state, h.successes, h.failures)
                changed = group.observe(h.owner, h.check, track) or changed
        if changed:
            self.host.notify()

    def _group_of(self, owner: str) -> str:
        name = owner.rpartition(":")[0]
        for group in self.groups.values():  # a replica's name starts with its group's base
            if name in group.replicas:
                return group.name
        return ""

    # -- measurements --------------------------------------------------------------------------

    def backends_of(self, group: str) -> list[BackendService]:
        return self._backends_of.get(group, [])

    def load_of(self, group: str) -> tuple[Load, float]:
        """The summed counters of the backend services in front of `group`, and when they were
        read (the data plane's monotonic clock)."""
        in_flight, total, busy = 0, 0, 0.0
        for spec in self._backends_of.get(group, ()):
            load = self.loads.get(spec.name)
            if load is not None:
                in_flight += load.in_flight
                total += load.total
                busy += load.busy
        return Load(in_flight, total, busy), self.loads_at

    def backend_health(self, service: str) -> list[EndpointHealth]:
        """What `backendServices.getHealth` reports: each replica of the service's groups with
        its state under the service's health check (HEALTHY when it has none and runs)."""
        rec = self.store.get(ResourceKey(BackendService.KIND, service))
        if rec is None or not isinstance(rec.spec, BackendService):
            return []
        spec = rec.spec
        check = lb_config.name_of(spec.health_checks[0]) if spec.health_checks else None
        out = []
        for backend in spec.backends:
            group = self.groups.get(lb_config.name_of(backend.group))
            if group is None:
                continue
            for r in sorted(group.replicas.values(), key=lambda r: r.name):
                if r.running is None:
                    continue
                state = r.health(check) if check else Health.HEALTHY
                out.append(EndpointHealth(group.name, r.name, r.running.port, str(state)))
        return out

    def detail(self, name: str) -> str:
        entry = self.listeners.get(name)
        return f"listening on 127.0.0.1:{entry.port}" if entry else "not listening"
