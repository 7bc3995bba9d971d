"""Compute resources the agent keeps as documents: the project, its zone and region, and the
foundation's firewalls and global addresses (validated against their schemas, stored, listed,
deleted; locally they change no traffic: every replica is on loopback)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mlplane.apis.errors import already_exists, not_found
from mlplane.apis.schema import strip_output_only
from mlplane.model.compute import ResourceKey, Verb

from ..gateway import Call, Handler
from ..operations import numeric_id
from . import compute_views as views
from .compute import API, ComputeApi, merge_patch


@dataclass
class Document:
    body: dict[str, Any]
    id: str = field(default_factory=numeric_id)
    created_at: float = field(default_factory=time.time)


# discovery resource -> (schema, collection in links, kind noun, permission noun)
_DOCUMENTS = {
    "firewalls": ("Firewall", "firewalls", "firewall", "firewalls"),
    "globalAddresses": ("Address", "addresses", "address", "globalAddresses"),
}


class StaticApi:
    def __init__(self, compute: ComputeApi, zone: str, region: str) -> None:
        self.compute = compute
        self.zone = zone
        self.region = region
        self.documents: dict[str, dict[str, Document]] = {res: {} for res in _DOCUMENTS}

    def handlers(self) -> dict[str, Handler]:
        out: dict[str, Handler] = {
            "compute.projects.get": self._project,
            "compute.zones.get": self._zone_get,
            "compute.zones.list": self._zone_list,
            "compute.regions.get": self._region_get,
            "compute.regions.list": self._region_list,
        }
        for res in _DOCUMENTS:
            out[f"compute.{res}.insert"] = self._insert(res)
            out[f"compute.{res}.get"] = self._get(res)
            out[f"compute.{res}.list"] = self._list(res)
            out[f"compute.{res}.delete"] = self._delete(res)
            if f"compute.{res}.patch" in API.methods:
                out[f"compute.{res}.patch"] = self._patch(res)
        return out

    def _perm(self, call: Call, perm: str) -> None:
        self.compute.check_project(call)
        self.compute.service.gate.require_project(call.caller, perm)

    # -- project, zones, regions ---------------------------------------------------------------

    async def _project(self, call: Call) -> object:
        self._perm(call, "compute.projects.get")
        project = self.compute.project
        return {
            "kind": "compute#project",
            "id": str(abs(hash(project)) % 10**12),
            "name": project,
            "commonInstanceMetadata": {"kind": "compute#metadata", "items": []},
            "quotas": [],
            "defaultNetworkTier": "PREMIUM",
            "selfLink": self.compute.links.of("").rstrip("/"),
        }

    def _zone_json(self) -> dict[str, Any]:
        links = self.compute.links
        return {
            "kind": "compute#zone",
            "id": "2000",
            "name": self.zone,
            "status": "UP",
            "region": links.of(f"regions/{self.region}"),
            "selfLink": links.zone(self.zone),
        }

    def _region_json(self) -> dict[str, Any]:
        links = self.compute.links
        return {
            "kind": "compute#region",
            "id": "1000",
            "name": self.region,
            "status": "UP",
            "zones": [links.zone(self.zone)],
            "selfLink": links.of(f"regions/{self.region}"),
        }

    async def _zone_get(self, call: Call) -> object:
        self._perm(call, "compute.zones.get")
        if call.param("zone") != self.zone:
            raise not_found(f"projects/{self.compute.project}/zones/{call.param('zone')}")
        return self._zone_json()

    async def _zone_list(self, call: Call) -> object:
        self._perm(call, "compute.zones.list")
        return views.listing("zone", [self._zone_json()], self.compute.links.of("zones"))

    async def _region_get(self, call: Call) -> object:
        self._perm(call, "compute.regions.get")
        if call.param("region") != self.region:
            raise not_found(f"projects/{self.compute.project}/regions/{call.param('region')}")
        return self._region_json()

    async def _region_list(self, call: Call) -> object:
        self._perm(call, "compute.regions.list")
        return views.listing("region", [self._region_json()], self.compute.links.of("regions"))

    # -- documents -----------------------------------------------------------------------------

    def _render(self, res: str, doc: Document) -> dict[str, Any]:
        _, collection, noun, _ = _DOCUMENTS[res]
        name = doc.body["name"]
        return {
            **doc.body,
            "kind": f"compute#{noun}",
            "id": doc.id,
            "creationTimestamp": views.rfc3339(doc.created_at),
            "selfLink": self.compute.links.of(f"global/{collection}/{name}"),
        }

    def _done(self, call: Call, res: str, name: str, op_type: str) -> dict[str, Any]:
        ops = self.compute.service.ops
        op = ops.start(
            ResourceKey(_DOCUMENTS[res][1], name), Verb.UPDATE, "global", call.param("requestId"),
            op_type=op_type, user=call.caller.principal.email,
        )  # fmt: skip
        ops.finish(op)
        return views.operation(
            op, self.compute.links, self.compute.links.of(f"global/{_DOCUMENTS[res][1]}/{name}")
        )

    def _param(self, res: str) -> str:
        return "firewall" if res == "firewalls" else "address"

    def _insert(self, res: str) -> Handler:
        schema, _, _, perm = _DOCUMENTS[res]

        async def insert(call: Call) -> object:
            self._perm(call, f"compute.{perm}.create")
            body = strip_output_only(API, schema, call.body)
            name = str(body.get("name", ""))
            if name in self.documents[res]:
                raise already_exists(
                    f"projects/{self.compute.project}/global/{_DOCUMENTS[res][1]}/{name}"
                )
            self.documents[res][name] = Document(body)
            return self._done(call, res, name, "insert")

        return insert

    def _doc(self, res: str, call: Call) -> Document:
        name = call.param(self._param(res))
        doc = self.documents[res].get(name)
        if doc is None:
            raise not_found(f"projects/{self.compute.project}/global/{_DOCUMENTS[res][1]}/{name}")
        return doc

    def _get(self, res: str) -> Handler:
        async def get(call: Call) -> object:
            self._perm(call, f"compute.{_DOCUMENTS[res][3]}.get")
            return self._render(res, self._doc(res, call))

        return get

    def _list(self, res: str) -> Handler:
        async def list_(call: Call) -> object:
            self._perm(call, f"compute.{_DOCUMENTS[res][3]}.list")
            items = [self._render(res, d) for _, d in sorted(self.documents[res].items())]
            return views.listing(
                _DOCUMENTS[res][2], items, self.compute.links.of(f"global/{_DOCUMENTS[res][1]}")
            )

        return list_

    def _delete(self, res: str) -> Handler:
        async def delete(call: Call) -> object:
            self._perm(call, f"compute.{_DOCUMENTS[res][3]}.delete")
            doc = self._doc(res, call)
            del self.documents[res][doc.body["name"]]
            return self._done(call, res, doc.body["name"], "delete")

        return delete

    def _patch(self, res: str) -> Handler:
        async def patch(call: Call) -> object:
            self._perm(call, f"compute.{_DOCUMENTS[res][3]}.update")
            doc = self._doc(res, call)
            body = strip_output_only(API, _DOCUMENTS[res][0], call.body)
            doc.body = merge_patch(doc.body, body) | {"name": doc.body["name"]}
            return self._done(call, res, doc.body["name"], "patch")

        return patch
