"""Compute Engine JSON as Google renders it: resources (the spec plus output-only fields),
instances of managed groups, instance groups, operations and (aggregated) lists.

Links carry the agent's own base URL (`http://127.0.0.1:PORT/compute/v1/`), as Google's carry
`https://www.googleapis.com/compute/v1/`, so that a client that follows a self link (gcloud
does) comes back to the agent.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic.alias_generators import to_camel

from mlplane.model.compute import (
    Autoscaler,
    ForwardingRule,
    Instance,
    InstanceGroupManager,
    InstanceTemplate,
    ResourceSpec,
)
from mlplane.providers.base import OperationStatus
from mlplane.providers.local.wire import ReplicaView

from ..operations import OperationRecord
from ..store import Record

# discovery resource name -> Compute's `kind` noun
KIND_NOUNS: Mapping[str, str] = {
    "instanceTemplate": "instanceTemplate",
    "instanceGroupManager": "instanceGroupManager",
    "autoscaler": "autoscaler",
    "healthCheck": "healthCheck",
    "backendService": "backendService",
    "urlMap": "urlMap",
    "targetHttpProxy": "targetHttpProxy",
    "forwardingRule": "forwardingRule",
    "instance": "instance",
}


def rfc3339(t: float) -> str:
    frac = f"{t % 1:.3f}"[1:]
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + frac + "+00:00"


@dataclass(frozen=True)
class Links:
    """How to spell links of one project at one base URL."""

    base: str  # .../compute/v1/
    project: str

    def of(self, partial: str) -> str:
        return f"{self.base}projects/{self.project}/{partial}"

    def zone(self, zone: str) -> str:
        return self.of(f"zones/{zone}")

    def scope(self, scope: str) -> str:
        return self.of(scope)


def zone_of(spec: ResourceSpec) -> str | None:
    zone = getattr(spec, "zone", None)
    return zone if isinstance(zone, str) else None


def resource(rec: Record, links: Links, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The resource as `get` returns it."""
    spec = rec.spec
    out = spec.to_api(links.project, base=links.base)
    for field in type(spec).BODY_EXCLUDE:
        value = getattr(spec, field)
        if value:
            wire = to_camel(field)
            out[wire] = spec.model_dump(mode="json", by_alias=True)[wire]
    out.update(
        {
            "kind": f"compute#{KIND_NOUNS[spec.KIND]}",
            "id": rec.id,
            "creationTimestamp": rfc3339(rec.created_at),
            "name": spec.name,
            "selfLink": links.of(spec.link),
        }
    )
    if type(spec).FINGERPRINTED:
        out["fingerprint"] = rec.fingerprint
    zone = zone_of(spec)
    if zone is not None:
        out["zone"] = links.zone(zone)
    if isinstance(spec, InstanceGroupManager):
        out["instanceGroup"] = links.of(spec.instance_group_link)
    if isinstance(spec, ForwardingRule) and "IPAddress" not in out:
        out["IPAddress"] = "127.0.0.1"
    if isinstance(spec, Autoscaler):
        out["status"] = "ACTIVE"
    out.update(extra or {})
    return out


def instance_from_template(
    view: ReplicaView,
    template: InstanceTemplate,
    group: InstanceGroupManager,
    links: Links,
    created_at: float,
) -> dict[str, Any]:
    """A MIG's replica as an Instance: its template's properties plus its runtime state."""
    props = template.properties.to_api(links.project, base=links.base)
    metadata = props.get("metadata") or {}
    items = list(metadata.get("items", ()))
    items.append({"key": "created-by", "value": links.of(group.link)})
    props["metadata"] = {"items": items, "kind": "compute#metadata"}
    props["machineType"] = (
        links.zone(group.zone) + f"/machineTypes/{template.properties.machine_type}"
    )
    return instance_json(
        {**props, "name": view.name},
        view,
        group.zone,
        links,
        created_at,
    )


def instance_json(
    body: dict[str, Any],
    view: ReplicaView | None,
    zone: str,
    links: Links,
    created_at: float,
    status: str | None = None,
) -> dict[str, Any]:
    """Fill an Instance body with its output-only fields and runtime state."""
    name = body["name"]
    nics = []
    for i, nic in enumerate(body.get("networkInterfaces") or [{}]):
        nics.append(
            {**nic, "name": f"nic{i}", "networkIP": "127.0.0.1", "kind": "compute#networkInterface"}
        )
    machine = str(body.get("machineType", ""))
    if machine and not machine.startswith(("http://", "https://")):
        machine = links.of(machine)
    state = status or (_instance_status(view.status) if view else "TERMINATED")
    return {
        **body,
        "kind": "compute#instance",
        "id": str(int(hashlib.sha256(f"{name}:{created_at}".encode()).hexdigest()[:15], 16)),
        "name": name,
        "zone": links.zone(zone),
        "machineType": machine,
        "networkInterfaces": nics,
        "status": state,
        "creationTimestamp": rfc3339(created_at),
        "selfLink": links.of(f"zones/{zone}/instances/{name}"),
    }


def _instance_status(process_status: str) -> str:
    return {
        "RUNNING": "RUNNING",
        "STARTING": "STAGING",
        "PROVISIONING": "PROVISIONING",
        "STOPPING": "STOPPING",
    }.get(process_status, "TERMINATED")


def standalone_instance(rec: Record, view: ReplicaView | None, links: Links) -> dict[str, Any]:
    spec = rec.spec
    assert isinstance(spec, Instance)
    body = resource(rec, links)
    status = _instance_status(view.status) if view else "PROVISIONING"
    return instance_json(body, view, spec.zone, links, rec.created_at, status)


def operation(op: OperationRecord, links: Links, target_link: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "compute#operation",
        "id": op.id,
        "name": op.name,
        "operationType": op.op_type,
        "targetLink": target_link,
        "status": str(op.status),
        "user": op.user,
        "progress": 100 if op.status is OperationStatus.DONE else 0,
        "insertTime": rfc3339(op.inserted),
        "selfLink": links.of(f"{op.scope}/operations/{op.name}"),
    }
    if op.target_id:
        out["targetId"] = op.target_id
    if op.request_id:
        out["clientOperationId"] = op.request_id
    if op.started is not None:
        out["startTime"] = rfc3339(op.started)
    if op.ended is not None:
        out["endTime"] = rfc3339(op.ended)
    if op.scope.startswith("zones/"):
        out["zone"] = links.of(op.scope)
    if op.error is not None:
        out["error"] = {"errors": [{"code": op.error.code, "message": op.error.message}]}
        if op.error.http_status is not None:
            out["httpErrorStatusCode"] = op.error.http_status
            out["httpErrorMessage"] = _HTTP_MESSAGES.get(op.error.http_status, "ERROR")
    return out


_HTTP_MESSAGES = {
    400: "BAD REQUEST",
    403: "FORBIDDEN",
    404: "NOT FOUND",
    500: "INTERNAL SERVER ERROR",
}


def listing(noun: str, items: list[dict[str, Any]], self_link: str) -> dict[str, Any]:
    return {
        "kind": f"compute#{noun}List",
        "id": self_link.split("/compute/v1/", 1)[-1],
        "items": items,
        "selfLink": self_link,
    }


def aggregated(
    noun: str, field: str, scoped: Iterable[tuple[str, dict[str, Any]]], self_link: str
) -> dict[str, Any]:
    """`items` is a map of scopes (`zones/Z`, `global`) to `{field: [...]}`, as gcloud expects."""
    items: dict[str, Any] = {}
    for scope, item in scoped:
        items.setdefault(scope, {field: []})[field].append(item)
    return {
        "kind": f"compute#{noun}AggregatedList",
        "id": self_link.split("/compute/v1/", 1)[-1],
        "items": items,
        "selfLink": self_link,
    }
