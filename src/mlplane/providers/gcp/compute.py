"""Compute Engine kinds as providers: one class per kind, all over the one client.

Bodies are the specs' `to_api(project)`; responses are read back with the specs' `from_api`.
Zonal kinds live in the project's zone (`ProviderContext.zone`). A MIG's named ports are set
with `instanceGroups.setNamedPorts` after its insert (on a MIG they are output-only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from mlplane.errors import ConfigError
from mlplane.model.compute import (
    Autoscaler,
    BackendService,
    ForwardingRule,
    HealthCheck,
    Instance,
    InstanceGroupManager,
    InstanceTemplate,
    ResourceKey,
    ResourceSpec,
    TargetHttpProxy,
    UrlMap,
    Verb,
)
from mlplane.providers.base import (
    ManagedInstance,
    Observed,
    Operation,
    ProviderContext,
    ResourceProvider,
    SupportsManagedInstances,
    SupportsOperationWait,
    wait_for_operation,
)
from mlplane.providers.errors import InvalidRequest

from .client import GoogleApis
from .operations import OperationPoller, compute_operation
from .session import apis_for

SpecT = TypeVar("SpecT", bound=ResourceSpec)


@dataclass(frozen=True)
class KindMethods:
    resource: str  # the discovery resource, e.g. urlMaps
    param: str  # the path (or query) parameter naming one resource
    zonal: bool = False
    update: str | None = None  # update | patch | setUrlMap | setTarget (None: immutable)


class ComputeProvider(ResourceProvider[SpecT], SupportsOperationWait, Generic[SpecT]):
    """One Compute Engine kind over the one client."""

    SPEC: ClassVar[type[ResourceSpec]]
    METHODS: ClassVar[KindMethods]

    def __init__(self, ctx: ProviderContext, apis: GoogleApis | None = None) -> None:
        self.ctx = ctx
        self.apis = apis or apis_for(ctx)
        self.poller = OperationPoller(self.apis, ctx.project)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "SPEC" in cls.__dict__:
            cls.KIND = cls.SPEC.KIND

    # -- parameters ----------------------------------------------------------------------------

    def _zone(self, spec: ResourceSpec | None = None) -> str:
        zone = getattr(spec, "zone", None) or self.ctx.zone
        if not zone:
            raise ConfigError("project", "project.zone", f"{self.SPEC.KIND} needs a zone")
        return str(zone)

    def _params(self, spec: ResourceSpec | None = None, **extra: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"project": self.ctx.project}
        if self.METHODS.zonal:
            params["zone"] = self._zone(spec)
        params.update({k: v for k, v in extra.items() if v is not None})
        return params

    def _method(self, verb: str) -> str:
        return f"compute.{self.METHODS.resource}.{verb}"

    def _op(self, data: Any, key: ResourceKey, verb: Verb) -> Operation:
        return compute_operation(data, key, verb)

    # -- the contract --------------------------------------------------------------------------

    def body(self, spec: SpecT, fingerprint: str | None = None) -> dict[str, Any]:
        return spec.to_api(self.ctx.project, fingerprint=fingerprint)

    def create(self, spec: SpecT, *, request_id: str) -> Operation:
        params = self._params(spec, requestId=request_id)
        data = self.apis.call(self._method("insert"), params, self.body(spec), key=spec.key)
        return self._op(data, spec.key, Verb.CREATE)

    def get(self, key: ResourceKey) -> Observed[SpecT]:
        params = self._params(None, **{self.METHODS.param: key.name})
        data = self.apis.call(self._method("get"), params, key=key)
        return self.observed(data)

    def observed(self, data: dict[str, Any]) -> Observed[SpecT]:
        spec: Any = self.SPEC.from_api(data, self.ctx.project)
        return Observed(
            spec,
            data.get("fingerprint"),
            str(data.get("status", "READY")),
            str(data.get("selfLink", "")),
        )

    def update(self, spec: SpecT, *, fingerprint: str | None, request_id: str) -> Operation:
        how = self.METHODS.update
        if how is None:  # the API has no update for this kind
            raise InvalidRequest(
                f"{spec.key} is immutable: create a new {spec.KIND} (e.g. one per revision) "
                "instead of updating it",
                spec.key,
            )
        params = self._params(spec, requestId=request_id, **{self.METHODS.param: spec.name})
        if how == "setUrlMap":
            assert isinstance(spec, TargetHttpProxy)
            body: dict[str, Any] = {"urlMap": spec.to_api(self.ctx.project)["urlMap"]}
        elif how == "setTarget":
            assert isinstance(spec, ForwardingRule)
            body = {"target": spec.to_api(self.ctx.project)["target"]}
        else:
            body = self.body(spec, fingerprint)
        data = self.apis.call(self._method(how), params, body, key=spec.key)
        return self._op(data, spec.key, Verb.UPDATE)

    def delete(self, key: ResourceKey, *, request_id: str) -> Operation:
        params = self._params(None, requestId=request_id, **{self.METHODS.param: key.name})
        data = self.apis.call(self._method("delete"), params, key=key)
        return self._op(data, key, Verb.DELETE)

    def list(self) -> Sequence[Observed[SpecT]]:
        data = self.apis.call(self._method("list"), self._params())
        return [self.observed(item) for item in (data or {}).get("items", ())]

    def get_operation(self, op: Operation) -> Operation:
        return self.poller.get(op)

    def wait_operation(self, op: Operation, timeout: float) -> Operation:
        return self.poller.wait(op, timeout)


class ComputeInstanceTemplates(ComputeProvider[InstanceTemplate]):
    SPEC = InstanceTemplate
    METHODS = KindMethods("instanceTemplates", "instanceTemplate")


class ComputeHealthChecks(ComputeProvider[HealthCheck]):
    SPEC = HealthCheck
    METHODS = KindMethods("healthChecks", "healthCheck", update="update")


class ComputeBackendServices(ComputeProvider[BackendService]):
    SPEC = BackendService
    METHODS = KindMethods("backendServices", "backendService", update="update")


class ComputeUrlMaps(ComputeProvider[UrlMap]):
    SPEC = UrlMap
    METHODS = KindMethods("urlMaps", "urlMap", update="update")


class ComputeTargetHttpProxies(ComputeProvider[TargetHttpProxy]):
    SPEC = TargetHttpProxy
    METHODS = KindMethods("targetHttpProxies", "targetHttpProxy", update="setUrlMap")


class ComputeForwardingRules(ComputeProvider[ForwardingRule]):
    SPEC = ForwardingRule
    METHODS = KindMethods("globalForwardingRules", "forwardingRule", update="setTarget")


class ComputeAutoscalers(ComputeProvider[Autoscaler]):
    SPEC = Autoscaler
    METHODS = KindMethods("autoscalers", "autoscaler", zonal=True, update="update")


class ComputeInstances(ComputeProvider[Instance]):
    SPEC = Instance
    METHODS = KindMethods("instances", "instance", zonal=True)


class ComputeInstanceGroupManagers(ComputeProvider[InstanceGroupManager], SupportsManagedInstances):
    """A MIG: insert (or patch), then its instance group's named ports."""

    SPEC = InstanceGroupManager
    METHODS = KindMethods(
        "instanceGroupManagers", "instanceGroupManager", zonal=True, update="patch"
    )
    WAIT = 600.0

    def create(self, spec: InstanceGroupManager, *, request_id: str) -> Operation:
        op = super().create(spec, request_id=request_id)
        return self._then_named_ports(op, spec, request_id)

    def update(
        self, spec: InstanceGroupManager, *, fingerprint: str | None, request_id: str
    ) -> Operation:
        op = super().update(spec, fingerprint=fingerprint, request_id=request_id)
        return self._then_named_ports(op, spec, request_id)

    def _then_named_ports(
        self, op: Operation, spec: InstanceGroupManager, request_id: str
    ) -> Operation:
        if not spec.named_ports:
            return op
        op = wait_for_operation(op, f"{op.verb} {spec.key}", self.WAIT, poller=self)
        params = self._params(spec, instanceGroup=spec.name, requestId=_derived(request_id))
        body = {"namedPorts": [p.to_api() for p in spec.named_ports]}
        data = self.apis.call("compute.instanceGroups.setNamedPorts", params, body, key=spec.key)
        return self._op(data, spec.key, op.verb)

    def list_managed_instances(self, key: ResourceKey) -> Sequence[ManagedInstance]:
        params = self._params(instanceGroupManager=key.name)
        data = self.apis.call("compute.instanceGroupManagers.listManagedInstances", params, key=key)
        out = []
        for item in (data or {}).get("managedInstances", ()):
            health = (item.get("instanceHealth") or [{}])[0].get("detailedHealthState")
            name = str(item.get("name") or str(item.get("instance", "")).rsplit("/", 1)[-1])
            out.append(ManagedInstance(name, str(item.get("instanceStatus", "")), health,
                                       str(item.get("currentAction", "NONE"))))  # fmt: skip
        return out


def _derived(request_id: str) -> str:
    """A second request id for the call that follows another, stable across retries."""
    import uuid

    try:
        return str(uuid.uuid5(uuid.UUID(request_id), "namedPorts"))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, request_id + "/namedPorts"))
