"""Compute Engine v1 as the agent serves it: CRUD of the kinds mlplane manages, their lists and
aggregated lists, patch/update with fingerprints, and operations (get, wait, list).

Each handler authorizes the caller for the method (in ResourceService, or here for reads),
turns the validated body into a spec with the spec's own `from_api`, and answers with Google's
JSON (`compute_views`). Group-, instance- and health-specific methods are in `compute_groups`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlplane.apis.discovery import load
from mlplane.apis.errors import ApiError, bad_request, not_found
from mlplane.apis.schema import strip_output_only
from mlplane.model.compute import (
    SPEC_TYPES,
    Autoscaler,
    ForwardingRule,
    InstanceGroupManager,
    ResourceKey,
    ResourceSpec,
    TargetHttpProxy,
    Verb,
    link_key,
)

from ..gateway import Call, Handler, Surface
from ..operations import OperationRecord
from ..service import ResourceService
from ..store import Record
from . import compute_views as views
from .compute_views import Links

# discovery resource -> (mlplane kind, path parameter naming one resource)
RESOURCES: dict[str, tuple[str, str]] = {
    "instanceTemplates": ("instanceTemplate", "instanceTemplate"),
    "instanceGroupManagers": ("instanceGroupManager", "instanceGroupManager"),
    "autoscalers": ("autoscaler", "autoscaler"),
    "healthChecks": ("healthCheck", "healthCheck"),
    "backendServices": ("backendService", "backendService"),
    "urlMaps": ("urlMap", "urlMap"),
    "targetHttpProxies": ("targetHttpProxy", "targetHttpProxy"),
    "globalForwardingRules": ("forwardingRule", "forwardingRule"),
}
API = load("compute")
# How long a mutation's answer waits for its operation: a change of records is done within it
# and answered DONE (Google may answer DONE too; clients wait only for what is not).
SETTLE_SEC = 0.002


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch (arrays are replaced wholesale, null deletes)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class ComputeApi:
    def __init__(self, service: ResourceService, base_url: Callable[[], str]) -> None:
        self.service = service
        self._base_url = base_url

    @property
    def project(self) -> str:
        return self.service.gate.project

    @property
    def links(self) -> Links:
        return Links(self._base_url(), self.project)

    # -- shared helpers -----------------------------------------------------------------------

    def check_project(self, call: Call) -> None:
        if call.param("project") != self.project:
            raise not_found(f"projects/{call.param('project')}")

    def record(self, kind: str, name: str, call: Call) -> Record:
        """The record a path names (404 when missing or in another zone)."""
        self.check_project(call)
        rec = self.service.store.get(ResourceKey(kind, name))
        zone = call.param("zone")
        if rec is None or (zone and views.zone_of(rec.spec) != zone):
            where = f"zones/{zone}" if zone else "global"
            collection = SPEC_TYPES[kind].COLLECTION
            raise not_found(f"projects/{self.project}/{where}/{collection}/{name}")
        return rec

    def spec_of(self, kind: str, body: dict[str, Any], call: Call) -> ResourceSpec:
        data = dict(body)
        if call.param("zone"):
            data["zone"] = call.param("zone")
        try:
            return SPEC_TYPES[kind].from_api(data, self.project)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise bad_request(_first_error(exc)) from None

    def render(self, rec: Record) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        spec = rec.spec
        if isinstance(spec, Autoscaler):
            target = link_key(spec.target)
            group = self.service.runtime.groups.get(target.name) if target else None
            if group is not None:
                extra["recommendedSize"] = group.target_size
        return views.resource(rec, self.links, extra)

    async def settled(self, op: OperationRecord) -> dict[str, Any]:
        """A mutation's operation, answered once its work is done if that takes at most
        SETTLE_SEC (a record's change: the caller need not ask again), else as it is then."""
        return self.operation(await self.service.ops.wait(op.name, SETTLE_SEC))

    def operation(self, op: OperationRecord) -> dict[str, Any]:
        spec_type = SPEC_TYPES.get(op.target.kind)
        collection = spec_type.COLLECTION if spec_type is not None else op.target.kind
        if op.target.kind == InstanceGroupManager.KIND and op.op_type == "setNamedPorts":
            collection = "instanceGroups"
        target = self.links.of(f"{op.scope}/{collection}/{op.target.name}")
        return views.operation(op, self.links, target)

    # -- CRUD ----------------------------------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        out: dict[str, Handler] = {}
        for res, (kind, param) in RESOURCES.items():
            out[f"compute.{res}.insert"] = self._insert(kind)
            out[f"compute.{res}.get"] = self._get(kind, param)
            out[f"compute.{res}.list"] = self._list(kind, res)
            out[f"compute.{res}.delete"] = self._delete(kind, param)
            if f"compute.{res}.aggregatedList" in API.methods:
                out[f"compute.{res}.aggregatedList"] = self._aggregated(kind, res)
            if f"compute.{res}.patch" in API.methods:
                out[f"compute.{res}.patch"] = self._patch(kind, param)
            if f"compute.{res}.update" in API.methods:
                out[f"compute.{res}.update"] = self._update(kind, param)
        out["compute.forwardingRules.aggregatedList"] = self._aggregated(
            ForwardingRule.KIND, "forwardingRules"
        )
        out["compute.targetHttpProxies.setUrlMap"] = self._set_url_map
        out["compute.globalForwardingRules.setTarget"] = self._set_target
        out["compute.urlMaps.validate"] = self._validate_url_map
        for scope in ("global", "zone"):
            out[f"compute.{scope}Operations.get"] = self._operation_get
            out[f"compute.{scope}Operations.wait"] = self._operation_wait
            out[f"compute.{scope}Operations.list"] = self._operation_list
        out["compute.globalOperations.aggregatedList"] = self._operation_aggregated
        return out

    def _insert(self, kind: str) -> Handler:
        async def insert(call: Call) -> object:
            self.check_project(call)
            spec = self.spec_of(kind, call.body, call)
            op = self.service.create(call.caller, spec, call.param("requestId"))
            return await self.settled(op)

        return insert

    def _get(self, kind: str, param: str) -> Handler:
        async def get(call: Call) -> object:
            rec = self.record(kind, call.param(param), call)
            self.service.gate.authorize(call.caller, Verb.GET, rec.key)
            return self.render(rec)

        return get

    def _list_records(self, kind: str, call: Call) -> list[Record]:
        self.check_project(call)
        perm = _list_permission(kind)
        self.service.gate.require_project(call.caller, perm)
        zone = call.param("zone")
        return [
            r for r in self.service.store.of_kind(kind) if not zone or views.zone_of(r.spec) == zone
        ]

    def _list(self, kind: str, res: str) -> Handler:
        async def list_(call: Call) -> object:
            items = [self.render(r) for r in self._list_records(kind, call)]
            scope = f"zones/{call.param('zone')}" if call.param("zone") else "global"
            return views.listing(views.KIND_NOUNS[kind], items, self.links.of(f"{scope}/{res}"))

        return list_

    def _aggregated(self, kind: str, res: str) -> Handler:
        field = SPEC_TYPES[kind].COLLECTION

        async def aggregated(call: Call) -> object:
            scoped = []
            for r in self._list_records(kind, call):
                zone = views.zone_of(r.spec)
                scoped.append((f"zones/{zone}" if zone else "global", self.render(r)))
            link = self.links.of(f"aggregated/{res}")
            return views.aggregated(views.KIND_NOUNS[kind], field, scoped, link)

        return aggregated

    def _delete(self, kind: str, param: str) -> Handler:
        async def delete(call: Call) -> object:
            rec = self.record(kind, call.param(param), call)
            op = self.service.delete(call.caller, rec.key, call.param("requestId"))
            return await self.settled(op)

        return delete

    def _name(self, call: Call, param: str, body: dict[str, Any]) -> str:
        # Autoscaler patch/update name it in the query (`?autoscaler=`), others in the path.
        name = call.param(param) or str(body.get("name", ""))
        if not name:
            raise bad_request(f"Required parameter '{param}' not specified", "required")
        return name

    async def _write(
        self, kind: str, call: Call, name: str, body: dict[str, Any], op_type: str
    ) -> object:
        if str(body.get("name", name)) != name:
            raise bad_request(
                f"The resource name in the body ('{body.get('name')}') must be '{name}'"
            )
        spec = self.spec_of(kind, body | {"name": name}, call)
        fingerprint = body.get("fingerprint")
        op = self.service.update(
            call.caller, spec, str(fingerprint) if fingerprint is not None else None,
            call.param("requestId"), op_type=op_type,
        )  # fmt: skip
        return await self.settled(op)

    def _patch(self, kind: str, param: str) -> Handler:
        async def patch(call: Call) -> object:
            name = self._name(call, param, call.body)
            rec = self.record(kind, name, call)
            current = strip_output_only(API, SPEC_TYPES[kind].API_SCHEMA, self.render(rec))
            merged = merge_patch(current, call.body)
            return await self._write(kind, call, name, merged, "patch")

        return patch

    def _update(self, kind: str, param: str) -> Handler:
        async def update(call: Call) -> object:
            name = self._name(call, param, call.body)
            self.record(kind, name, call)
            return await self._write(kind, call, name, call.body, "update")

        return update

    # -- methods of their own ------------------------------------------------------------------

    async def _set_url_map(self, call: Call) -> object:
        rec = self.record(TargetHttpProxy.KIND, call.param("targetHttpProxy"), call)
        spec = rec.spec.model_copy(update={"url_map": _link(self, call.body.get("urlMap"))})
        op = self.service.update(
            call.caller, spec, None, call.param("requestId"), op_type="setUrlMap",
            check_fingerprint=False,
            permissions=("compute.targetHttpProxies.setUrlMap", "compute.urlMaps.use"),
        )  # fmt: skip
        return await self.settled(op)

    async def _set_target(self, call: Call) -> object:
        rec = self.record(ForwardingRule.KIND, call.param("forwardingRule"), call)
        spec = rec.spec.model_copy(update={"target": _link(self, call.body.get("target"))})
        op = self.service.update(
            call.caller, spec, None, call.param("requestId"), op_type="setTarget",
            check_fingerprint=False,
            permissions=(
                "compute.globalForwardingRules.setTarget", "compute.targetHttpProxies.use",
            ),
        )  # fmt: skip
        return await self.settled(op)

    async def _validate_url_map(self, call: Call) -> object:
        self.record("urlMap", call.param("urlMap"), call)
        self.service.gate.require_project(call.caller, "compute.urlMaps.validate")
        errors: list[str] = []
        try:
            spec = self.spec_of("urlMap", call.body.get("resource") or {}, call)
            self.service.runtime.frontends.check_url_map(spec)  # type: ignore[arg-type]
            self.service.store.check_references(spec)
        except (ApiError, ValueError) as exc:
            errors.append(str(exc))
        except Exception as exc:  # the runtime's own refusal (InvalidRequest, ...)
            errors.append(str(exc))
        result: dict[str, Any] = {"loadSucceeded": not errors, "testPassed": not errors}
        if errors:
            result["loadErrors"] = errors
        return {"result": result}

    # -- operations ----------------------------------------------------------------------------

    def _op(self, call: Call) -> OperationRecord:
        self.check_project(call)
        scope = f"zones/{call.param('zone')}" if call.param("zone") else "global"
        perm = (
            "compute.zoneOperations.get" if call.param("zone") else "compute.globalOperations.get"
        )
        self.service.gate.require_project(call.caller, perm)
        try:
            op = self.service.ops.get(call.param("operation"))
        except Exception:
            raise not_found(
                f"projects/{self.project}/{scope}/operations/{call.param('operation')}"
            ) from None
        if op.scope != scope:
            raise not_found(f"projects/{self.project}/{scope}/operations/{op.name}")
        return op

    async def _operation_get(self, call: Call) -> object:
        return self.operation(self._op(call))

    async def _operation_wait(self, call: Call) -> object:
        op = self._op(call)
        waited = await self.service.ops.wait(op.name, 120.0)
        return self.operation(waited)

    async def _operation_list(self, call: Call) -> object:
        self.check_project(call)
        zone = call.param("zone")
        scope = f"zones/{zone}" if zone else "global"
        perm = "compute.zoneOperations.list" if zone else "compute.globalOperations.list"
        self.service.gate.require_project(call.caller, perm)
        items = [self.operation(op) for op in self.service.ops.in_scope(scope)]
        return views.listing("operation", items, self.links.of(f"{scope}/operations"))

    async def _operation_aggregated(self, call: Call) -> object:
        self.check_project(call)
        self.service.gate.require_project(call.caller, "compute.globalOperations.list")
        scoped = [(op.scope, self.operation(op)) for op in self.service.ops.in_scope("global")]
        return views.aggregated(
            "operation", "operations", scoped, self.links.of("aggregated/operations")
        )


def _list_permission(kind: str) -> str:
    noun = "globalForwardingRules" if kind == ForwardingRule.KIND else SPEC_TYPES[kind].COLLECTION
    return f"compute.{noun}.list"


def _link(api: ComputeApi, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise bad_request("Required field 'resource' not specified", "required")
    from mlplane.model.compute_base import short_link

    try:
        return short_link(value, api.project)
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "resource"
        return f"Invalid value for field 'resource.{where}': {first.get('msg')}"
    return str(exc)


def surface(api: ComputeApi, extra: dict[str, Handler]) -> Surface:
    return Surface(API, "/" + API.service_path, {**api.handlers(), **extra})


__all__ = ["ComputeApi", "merge_patch", "surface"]
