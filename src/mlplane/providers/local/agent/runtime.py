"""What each resource kind *does* in the agent, dispatched by kind: validate a spec before it
is accepted (`check`), make it real (`apply`), undo it (`remove`), describe it (`detail`).

Kinds with no runtime of their own (HealthCheck, BackendService, UrlMap, TargetHttpProxy,
Endpoints) act through the others: after every change the agent re-derives which health checks
probe which group and re-configures the load balancers (`_changed`).

`restore` re-creates the runtime of the records a killed agent left (docs/decisions/1601).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mlplane.model.compute import (
    Autoscaler,
    BackendService,
    EndpointsConfig,
    ForwardingRule,
    HealthCheck,
    Instance,
    InstanceGroupManager,
    InstanceTemplate,
    ResourceKey,
    ResourceSpec,
    TargetHttpProxy,
    UrlMap,
    link_key,
)
from mlplane.providers.errors import AlreadyExists, InvalidRequest, NotFound
from mlplane.providers.local.runtime import items_of, runtime_of
from mlplane.providers.local.wire import ReplicaView

from . import lb_config, openapi
from .frontends import Frontends
from .groups import GroupRuntime
from .host import Host
from .instances import InstanceRuntime
from .scalers import Autoscaling, ScalerLoop
from .store import Observed, Record, ResourceStore, State

log = logging.getLogger(__name__)
# The order a restart re-creates runtimes in: what a kind refers to comes before it.
RESTORE_ORDER = (
    InstanceTemplate.KIND,
    HealthCheck.KIND,
    InstanceGroupManager.KIND,
    Autoscaler.KIND,
    BackendService.KIND,
    UrlMap.KIND,
    TargetHttpProxy.KIND,
    ForwardingRule.KIND,
    Instance.KIND,
)


class Runtime:
    def __init__(self, host: Host, store: ResourceStore) -> None:
        self.host = host
        self.store = store
        self.groups: dict[str, GroupRuntime] = {}
        self.instances: dict[str, InstanceRuntime] = {}
        self.scalers: dict[str, ScalerLoop] = {}
        self.autoscaling = Autoscaling(host.settings.autoscale_tick_sec)
        self.frontends = Frontends(host, store, self.groups)
        host.notify = self._changed
        host.observe = store.observe

    def _spec(self, kind: str, link: str) -> ResourceSpec:
        key = link_key(link)
        rec = self.store.get(ResourceKey(kind, key.name)) if key else None
        if rec is None:
            raise NotFound(f"{kind} '{link}' was not found")
        return rec.spec

    def template(self, link: str) -> InstanceTemplate:
        spec = self._spec(InstanceTemplate.KIND, link)
        assert isinstance(spec, InstanceTemplate)
        return spec

    # -- the per-kind contract -----------------------------------------------------------------

    def check(self, spec: ResourceSpec, previous: ResourceSpec | None) -> None:
        """Refuse, before anything is recorded, what the local provider cannot make real."""
        try:
            if isinstance(spec, InstanceTemplate):
                runtime_of(items_of(spec.properties.metadata), f"instance template '{spec.name}'")
            elif isinstance(spec, Instance):
                if previous is None and spec.name in self.host.names:
                    raise AlreadyExists(f"an instance named '{spec.name}' exists", spec.key)
                probe = InstanceRuntime(self.host, spec, self.template)
                runtime_of(probe.items(), f"instance '{spec.name}'")
            elif isinstance(spec, UrlMap):
                self.frontends.check_url_map(spec)
            elif isinstance(spec, ForwardingRule):
                port = lb_config.parse_port(spec.port_range)
                if isinstance(previous, ForwardingRule) and port != lb_config.parse_port(
                    previous.port_range
                ):
                    raise ValueError("portRange cannot change: delete and recreate the rule")
            elif isinstance(spec, Autoscaler) and previous is None:
                for other in self.store.of_kind(Autoscaler.KIND):
                    assert isinstance(other.spec, Autoscaler)
                    if link_key(other.spec.target) == link_key(spec.target):
                        raise ValueError(f"{spec.target} already has autoscaler {other.key.name}")
        except ValueError as exc:
            raise InvalidRequest(str(exc), spec.key) from None

    async def apply(self, spec: ResourceSpec, previous: ResourceSpec | None) -> None:
        if isinstance(spec, InstanceGroupManager):
            if spec.name in self.groups:
                self.groups[spec.name].update(spec)
            else:
                group = GroupRuntime(self.host, spec, self.template)
                self.groups[spec.name] = group
                group.start()
        elif isinstance(spec, Autoscaler):
            if spec.name in self.scalers:
                self.scalers[spec.name].update(spec)
            else:
                self._start_scaler(spec)
        elif isinstance(spec, Instance):
            instance = InstanceRuntime(self.host, spec, self.template)
            await instance.start()
            self.instances[spec.name] = instance
        elif isinstance(spec, ForwardingRule):
            if spec.name in self.frontends.listeners:
                self.frontends.retarget(spec)
            else:
                await self.frontends.open(spec)
        self._changed()

    def _start_scaler(self, spec: Autoscaler) -> None:
        target = link_key(spec.target)
        name = target.name if target else ""

        def group() -> GroupRuntime | None:
            return self.groups.get(name)

        def backends() -> list[BackendService]:
            return self.frontends.backends_of(name)

        loop = ScalerLoop(spec, group, self.frontends.load_of, backends)
        if name in self.groups:
            self.groups[name].autoscaled = True
        self.scalers[spec.name] = loop
        self.autoscaling.add(loop)

    async def remove(self, spec: ResourceSpec) -> None:
        if isinstance(spec, InstanceGroupManager):
            group = self.groups.pop(spec.name, None)
            if group is not None:
                await group.stop()
        elif isinstance(spec, Autoscaler):
            loop = self.scalers.pop(spec.name, None)
            if loop is not None:
                self.autoscaling.discard(loop)
                group = loop.group()
                if group is not None:
                    group.autoscaled = False  # the group keeps its current size, as on GCP
        elif isinstance(spec, Instance):
            instance = self.instances.pop(spec.name, None)
            if instance is not None:
                await instance.stop()
        elif isinstance(spec, ForwardingRule):
            await self.frontends.close(spec.name)
        self._changed()

    # -- after a killed agent --------------------------------------------------------------------

    async def restore(self) -> None:
        """Re-create the runtime of the records a previous agent left (the store's records as
        the restore starts, before any workload runs): groups start their replicas, forwarding
        rules listen on their ports (the adopted data plane keeps them), instances follow their
        scheduling; then the data plane gets the whole configuration and may close listeners
        no rule claims (`Frontends.converged`). Operations the killed agent had accepted
        complete: a resource being deleted is gone, one being created or updated runs its
        spec."""
        rank = {kind: i for i, kind in enumerate(RESTORE_ORDER)}
        records = list(self.store.records.values())
        for rec in sorted(records, key=lambda r: (rank.get(r.key.kind, len(rank)), r.key.name)):
            if rec.state == State.DELETING:
                log.info("restore %s: its deletion completes", rec.key)
                self.store.remove(rec.key)
                continue
            try:
                await self._restore(rec)
            except Exception as exc:  # one resource must not keep the others down
                if rec.state == State.PROVISIONING:  # its create fails, as its operation would
                    log.warning("restore %s: its create fails: %s", rec.key, exc)
                    self.store.remove(rec.key)
                else:
                    log.warning("restore %s: its runtime cannot start: %s", rec.key, exc)
                continue
            if rec.state != State.READY:
                rec.state = State.READY
                self.store.save(rec)
        self._changed()
        self.frontends.converged()

    async def _restore(self, rec: Record) -> None:
        spec = rec.spec
        if isinstance(spec, InstanceGroupManager):
            size = self._restored_size(spec, rec.observed)
            group = GroupRuntime(
                self.host, spec, self.template, target_size=size, names=rec.observed.replicas
            )
            self.groups[spec.name] = group
            group.start()
        elif isinstance(spec, Instance):
            instance = InstanceRuntime(self.host, spec, self.template)
            self.instances[spec.name] = instance
            await instance.restore(rec.observed)
        elif isinstance(spec, (Autoscaler, ForwardingRule)):
            await self.apply(spec, None)

    def _restored_size(self, spec: InstanceGroupManager, observed: Observed) -> int:
        """The group's size after a restart: its autoscaler's last size within the autoscaler's
        bounds, else the size written (an autoscaler owns `targetSize`, decision 0304)."""
        for other in self.store.specs(Autoscaler.KIND):
            assert isinstance(other, Autoscaler)
            target = link_key(other.target)
            if target is None or target.name != spec.name:
                continue
            policy = other.autoscaling_policy
            low = policy.min_num_replicas if policy.min_num_replicas is not None else 1
            size = spec.target_size if observed.target_size is None else observed.target_size
            return min(max(size, low), policy.max_num_replicas)
        return spec.target_size

    def managed_instance_group(self, instance: str) -> GroupRuntime | None:
        """The group that runs a replica named `instance`, if any."""
        return next((g for g in self.groups.values() if instance in g.replicas), None)

    async def shutdown(self) -> None:
        await self.autoscaling.stop()
        await asyncio.gather(
            *(g.stop() for g in self.groups.values()),
            *(i.stop() for i in self.instances.values()),
        )
        await self.frontends.close_all()

    # -- derived state -------------------------------------------------------------------------

    def _changed(self) -> None:
        checks: dict[str, dict[str, HealthCheck]] = {name: {} for name in self.groups}

        def add(group: str, link: str) -> None:
            key = link_key(link)
            rec = self.store.get(ResourceKey(HealthCheck.KIND, key.name)) if key else None
            if group in checks and rec is not None and isinstance(rec.spec, HealthCheck):
                checks[group][rec.spec.name] = rec.spec

        for name, group in self.groups.items():
            for policy in group.spec.auto_healing_policies:
                add(name, policy.health_check)
        for spec in self.store.specs(BackendService.KIND):
            if isinstance(spec, BackendService) and spec.health_checks:
                for backend in spec.backends:
                    add(lb_config.name_of(backend.group), spec.health_checks[0])
        for name, group in self.groups.items():
            group.set_checks(checks[name])
        self.frontends.sync()

    def openapi(self) -> dict[str, Any]:
        configs = [
            s for s in self.store.specs(EndpointsConfig.KIND) if isinstance(s, EndpointsConfig)
        ]
        return openapi.merged(configs)

    def replicas(self) -> list[ReplicaView]:
        out = [v for g in self.groups.values() for v in g.views()]
        return out + [i.view() for i in self.instances.values()]

    def detail(self, rec: Record) -> str:
        name = rec.key.name
        if rec.key.kind == InstanceGroupManager.KIND and name in self.groups:
            group = self.groups[name]
            views = group.views()
            healthy = sum(1 for v in views if v.health == "HEALTHY")
            size = "autoscaled" if group.autoscaled else "target"
            return f"{healthy}/{len(views)} healthy, {size} size {group.target_size}"
        if rec.key.kind == Autoscaler.KIND and name in self.scalers:
            return self.scalers[name].detail()
        if rec.key.kind == Instance.KIND and name in self.instances:
            return self.instances[name].detail()
        if rec.key.kind == ForwardingRule.KIND:
            return self.frontends.detail(name)
        if isinstance(rec.spec, UrlMap):
            return route_summary(rec.spec)
        return ""


def route_summary(url_map: UrlMap) -> str:
    """One line per route rule: `PREFIX -> BACKEND [WEIGHT%], ...` (for status views)."""
    lines = []
    for matcher in url_map.path_matchers:
        for rule in sorted(matcher.route_rules, key=lambda r: r.priority):
            prefixes = [m.prefix_match or m.full_path_match or "?" for m in rule.match_rules]
            if rule.service:
                targets = rule.service.rsplit("/", 1)[-1]
            elif rule.route_action and rule.route_action.weighted_backend_services:
                wbs = rule.route_action.weighted_backend_services
                total = sum(w.weight for w in wbs) or 1
                targets = ", ".join(
                    f"{w.backend_service.rsplit('/', 1)[-1]} {round(100 * w.weight / total)}%"
                    for w in wbs
                )
            else:
                targets = "?"
            lines.append(f"{' '.join(p for p in prefixes if p)} -> {targets}")
    return "\n".join(lines)
