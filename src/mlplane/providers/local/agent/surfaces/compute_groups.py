"""Compute methods about running things: instances (standalone VMs and the replicas of managed
groups, as `gcloud compute instances list` shows both), instance groups, a MIG's own methods
(listManagedInstances, resize, setInstanceTemplate, recreateInstances, setNamedPorts) and
`backendServices.getHealth`.
"""

from __future__ import annotations

from typing import Any

from mlplane.apis.errors import bad_request, not_found
from mlplane.model.compute import (
    BackendService,
    Instance,
    InstanceGroupManager,
    NamedPort,
    ResourceKey,
    Verb,
    link_key,
)
from mlplane.providers.local.wire import ReplicaView

from ..gateway import Call, Handler
from ..groups import GroupRuntime
from . import compute_views as views
from .compute import ComputeApi

GUEST_NAMESPACE = "mlplane"


class GroupsApi:
    def __init__(self, compute: ComputeApi) -> None:
        self.compute = compute
        self.service = compute.service

    @property
    def runtime(self) -> Any:
        return self.service.runtime

    def handlers(self) -> dict[str, Handler]:
        return {
            "compute.instances.insert": self._instance_insert,
            "compute.instances.get": self._instance_get,
            "compute.instances.list": self._instance_list,
            "compute.instances.aggregatedList": self._instance_aggregated,
            "compute.instances.delete": self._instance_delete,
            "compute.instances.reset": self._instance_reset,
            "compute.instances.getGuestAttributes": self._guest_attributes,
            "compute.instanceGroupManagers.listManagedInstances": self._managed_instances,
            "compute.instanceGroupManagers.resize": self._resize,
            "compute.instanceGroupManagers.setInstanceTemplate": self._set_template,
            "compute.instanceGroupManagers.recreateInstances": self._recreate,
            "compute.instanceGroups.get": self._group_get,
            "compute.instanceGroups.list": self._group_list,
            "compute.instanceGroups.aggregatedList": self._group_aggregated,
            "compute.instanceGroups.listInstances": self._group_instances,
            "compute.instanceGroups.setNamedPorts": self._set_named_ports,
            "compute.backendServices.getHealth": self._get_health,
        }

    # -- instances -----------------------------------------------------------------------------

    def _replica(self, name: str) -> tuple[GroupRuntime, ReplicaView] | None:
        for group in self.runtime.groups.values():
            for view in group.views():
                if view.name == name:
                    return group, view
        return None

    def _standalone_view(self, name: str) -> ReplicaView | None:
        inst = self.runtime.instances.get(name)
        return inst.view() if inst is not None else None

    def _replica_json(self, group: GroupRuntime, view: ReplicaView) -> dict[str, Any]:
        rec = self.service.store.get(group.spec.key)
        created = rec.created_at if rec is not None else 0.0
        template = self.runtime.template(group.spec.instance_template)
        return views.instance_from_template(view, template, group.spec, self.compute.links, created)

    def _all_instances(self, zone: str | None) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for rec in self.service.store.of_kind(Instance.KIND):
            spec = rec.spec
            assert isinstance(spec, Instance)
            if zone and spec.zone != zone:
                continue
            view = self._standalone_view(spec.name)
            out.append((spec.zone, views.standalone_instance(rec, view, self.compute.links)))
        for group in self.runtime.groups.values():
            if zone and group.spec.zone != zone:
                continue
            for view in group.views():
                out.append((group.spec.zone, self._replica_json(group, view)))
        return sorted(out, key=lambda t: t[1]["name"])

    def _instance(self, call: Call) -> dict[str, Any]:
        self.compute.check_project(call)
        name, zone = call.param("instance"), call.param("zone")
        for _, body in self._all_instances(zone):
            if body["name"] == name:
                return body
        raise not_found(f"projects/{self.compute.project}/zones/{zone}/instances/{name}")

    async def _instance_insert(self, call: Call) -> object:
        self.compute.check_project(call)
        body = dict(call.body)
        template = call.param("sourceInstanceTemplate")
        if template:
            body["sourceInstanceTemplate"] = template
        elif not any(d.get("boot") for d in body.get("disks") or ()):
            raise bad_request(
                "Invalid value for field 'resource.disks': ''. Boot disk must be specified."
            )
        spec = self.compute.spec_of(Instance.KIND, body, call)
        if spec.name in self.runtime.host.names and self.service.store.get(spec.key) is None:
            raise bad_request(f"an instance named '{spec.name}' exists", "alreadyExists")
        op = self.service.create(call.caller, spec, call.param("requestId"))
        return self.compute.operation(op)

    async def _instance_get(self, call: Call) -> object:
        self.service.gate.authorize(
            call.caller, Verb.GET, ResourceKey(Instance.KIND, call.param("instance"))
        )
        return self._instance(call)

    async def _instance_list(self, call: Call) -> object:
        self.compute.check_project(call)
        self.service.gate.require_project(call.caller, "compute.instances.list")
        items = [b for _, b in self._all_instances(call.param("zone"))]
        link = self.compute.links.of(f"zones/{call.param('zone')}/instances")
        return views.listing("instance", items, link)

    async def _instance_aggregated(self, call: Call) -> object:
        self.compute.check_project(call)
        self.service.gate.require_project(call.caller, "compute.instances.list")
        scoped = [(f"zones/{z}", b) for z, b in self._all_instances(None)]
        link = self.compute.links.of("aggregated/instances")
        return views.aggregated("instance", "instances", scoped, link)

    async def _instance_delete(self, call: Call) -> object:
        body = self._instance(call)
        key = ResourceKey(Instance.KIND, body["name"])
        op = self.service.delete(call.caller, key, call.param("requestId"))
        return self.compute.operation(op)

    async def _instance_reset(self, call: Call) -> object:
        body = self._instance(call)
        name = body["name"]
        key = ResourceKey(Instance.KIND, name)
        self.service.gate.require(
            call.caller, ("compute.instances.reset",), self.service.gate.ref(key)
        )
        op = self.service.ops.start(
            key, Verb.UPDATE, f"zones/{call.param('zone')}", call.param("requestId"),
            op_type="reset", user=call.caller.principal.email,
        )  # fmt: skip
        found = self._replica(name)
        if found is not None:
            found[0].kill_replica(name)  # the group starts it again from its template
            self.service.ops.finish(op)
        else:
            inst = self.runtime.instances.get(name)

            async def restart() -> None:
                self.service.ops.running(op)
                if inst is not None:
                    await inst.reset()
                self.runtime.host.notify()
                self.service.ops.finish(op)

            self.runtime.host.background(restart())
        return self.compute.operation(op)

    async def _guest_attributes(self, call: Call) -> object:
        body = self._instance(call)
        name = body["name"]
        ref = self.service.gate.ref(ResourceKey(Instance.KIND, name))
        self.service.gate.require(call.caller, ("compute.instances.getGuestAttributes",), ref)
        found = self._replica(name)
        view = found[1] if found else self._standalone_view(name)
        items = []
        if view is not None and view.port:
            items.append(
                {"namespace": GUEST_NAMESPACE, "key": "endpoint", "value": f"127.0.0.1:{view.port}"}
            )
        variable = call.param("variableKey")
        if variable:
            value = next(
                (i["value"] for i in items if f"{i['namespace']}/{i['key']}" == variable), None
            )
            if value is None:
                raise not_found(f"guest attribute {variable} of instance {name}")
            return {
                "kind": "compute#guestAttributes",
                "variableKey": variable,
                "variableValue": value,
            }
        query = call.param("queryPath", f"{GUEST_NAMESPACE}/")
        chosen = [i for i in items if f"{i['namespace']}/{i['key']}".startswith(query)]
        return {
            "kind": "compute#guestAttributes",
            "queryPath": query,
            "queryValue": {"items": chosen},
        }

    # -- managed instance groups ---------------------------------------------------------------

    def _group(
        self, call: Call, param: str = "instanceGroupManager"
    ) -> tuple[GroupRuntime | None, Any]:
        rec = self.compute.record(InstanceGroupManager.KIND, call.param(param), call)
        return self.runtime.groups.get(rec.key.name), rec

    async def _managed_instances(self, call: Call) -> object:
        group, rec = self._group(call)
        self.service.gate.authorize(call.caller, Verb.GET, rec.key)
        items = []
        links = self.compute.links
        for view in group.views() if group is not None else ():
            item: dict[str, Any] = {
                "instance": links.of(f"zones/{rec.spec.zone}/instances/{view.name}"),
                "name": view.name,
                "instanceStatus": views._instance_status(view.status),
                "currentAction": "NONE" if view.status == "RUNNING" else "CREATING",
            }
            heal = rec.spec.auto_healing_policies
            if heal:
                state = view.health if view.health in ("HEALTHY", "UNHEALTHY") else "UNKNOWN"
                item["instanceHealth"] = [
                    {"healthCheck": links.of(heal[0].health_check), "detailedHealthState": state}
                ]
            items.append(item)
        return {"managedInstances": items}

    async def _mig_update(
        self, call: Call, rec: Any, update: dict[str, Any], op_type: str, perms: tuple[str, ...]
    ) -> object:
        spec = rec.spec.model_copy(update=update)
        op = self.service.update(
            call.caller, type(spec).model_validate(spec.model_dump()), None,
            call.param("requestId"), op_type=op_type, check_fingerprint=False, permissions=perms,
        )  # fmt: skip
        return await self.compute.settled(op)

    async def _resize(self, call: Call) -> object:
        _, rec = self._group(call)
        try:
            size = int(call.param("size"))
        except ValueError:
            raise bad_request(
                f"Invalid value for parameter 'size': {call.param('size')!r}"
            ) from None
        perms = ("compute.instanceGroupManagers.update",)
        op_type = "compute.instanceGroupManagers.resize"
        return await self._mig_update(call, rec, {"target_size": size}, op_type, perms)

    async def _set_template(self, call: Call) -> object:
        _, rec = self._group(call)
        link = call.body.get("instanceTemplate")
        if not isinstance(link, str):
            raise bad_request("Required field 'instanceTemplate' not specified", "required")
        from mlplane.model.compute_base import short_link

        return await self._mig_update(
            call, rec, {"instance_template": short_link(link, self.compute.project)},
            "compute.instanceGroupManagers.setInstanceTemplate",
            ("compute.instanceGroupManagers.update", "compute.instanceTemplates.useReadOnly"),
        )  # fmt: skip

    async def _recreate(self, call: Call) -> object:
        group, rec = self._group(call)
        self.service.gate.require(
            call.caller, ("compute.instanceGroupManagers.update",), self.service.gate.ref(rec.key)
        )
        op = self.service.ops.start(
            rec.key, Verb.UPDATE, f"zones/{rec.spec.zone}", call.param("requestId"),
            op_type="compute.instanceGroupManagers.recreateInstances",
            user=call.caller.principal.email, target_id=rec.id,
        )  # fmt: skip
        for url in call.body.get("instances") or ():
            name = str(url).rstrip("/").rsplit("/", 1)[-1]
            if group is not None and name in group.replicas:
                group.kill_replica(name)
        self.service.ops.finish(op)
        return self.compute.operation(op)

    # -- instance groups (the groups MIGs manage, same names) ----------------------------------

    def _group_json(self, rec: Any) -> dict[str, Any]:
        spec = rec.spec
        group = self.runtime.groups.get(spec.name)
        links = self.compute.links
        out: dict[str, Any] = {
            "kind": "compute#instanceGroup",
            "id": rec.id,
            "name": spec.name,
            "zone": links.zone(spec.zone),
            "size": len(group.views()) if group is not None else 0,
            "network": links.of("global/networks/default"),
            "fingerprint": rec.fingerprint,
            "creationTimestamp": views.rfc3339(rec.created_at),
            "selfLink": links.of(spec.instance_group_link),
        }
        if spec.named_ports:
            out["namedPorts"] = [{"name": p.name, "port": p.port} for p in spec.named_ports]
        return out

    async def _group_get(self, call: Call) -> object:
        _, rec = self._group(call, "instanceGroup")
        self.service.gate.require(
            call.caller, ("compute.instanceGroups.get",), self.service.gate.ref(rec.key)
        )
        return self._group_json(rec)

    def _groups(self, call: Call) -> list[Any]:
        self.compute.check_project(call)
        self.service.gate.require_project(call.caller, "compute.instanceGroups.list")
        zone = call.param("zone")
        return [
            r
            for r in self.service.store.of_kind(InstanceGroupManager.KIND)
            if not zone or views.zone_of(r.spec) == zone
        ]

    async def _group_list(self, call: Call) -> object:
        items = [self._group_json(r) for r in self._groups(call)]
        link = self.compute.links.of(f"zones/{call.param('zone')}/instanceGroups")
        return views.listing("instanceGroup", items, link)

    async def _group_aggregated(self, call: Call) -> object:
        scoped = [(f"zones/{r.spec.zone}", self._group_json(r)) for r in self._groups(call)]
        link = self.compute.links.of("aggregated/instanceGroups")
        return views.aggregated("instanceGroup", "instanceGroups", scoped, link)

    async def _group_instances(self, call: Call) -> object:
        group, rec = self._group(call, "instanceGroup")
        self.service.gate.require(
            call.caller, ("compute.instanceGroups.get",), self.service.gate.ref(rec.key)
        )
        links = self.compute.links
        items = [
            {
                "instance": links.of(f"zones/{rec.spec.zone}/instances/{v.name}"),
                "status": views._instance_status(v.status),
                "namedPorts": [{"name": p.name, "port": p.port} for p in rec.spec.named_ports],
            }
            for v in (group.views() if group is not None else ())
        ]
        return {"kind": "compute#instanceGroupsListInstances", "items": items}

    async def _set_named_ports(self, call: Call) -> object:
        _, rec = self._group(call, "instanceGroup")
        try:
            ports = tuple(NamedPort.model_validate(p) for p in call.body.get("namedPorts") or ())
        except ValueError as exc:
            raise bad_request(f"Invalid value for field 'namedPorts': {exc}") from None
        return await self._mig_update(call, rec, {"named_ports": ports}, "setNamedPorts",
                                ("compute.instanceGroups.update",))  # fmt: skip

    # -- backend health ------------------------------------------------------------------------

    async def _get_health(self, call: Call) -> object:
        rec = self.compute.record(BackendService.KIND, call.param("backendService"), call)
        self.service.gate.authorize(call.caller, Verb.GET, rec.key)
        spec = rec.spec
        assert isinstance(spec, BackendService)
        wanted = link_key(str(call.body.get("group", "")))
        if wanted is None or not any(link_key(b.group) == wanted for b in spec.backends):
            raise bad_request(
                f"Invalid value for field 'resource.group': '{call.body.get('group')}'. "
                "Not a backend of this backend service."
            )
        group = self.runtime.groups.get(wanted.name)
        links = self.compute.links
        statuses = [
            {
                "instance": links.of(f"zones/{group.spec.zone}/instances/{v.name}"),
                "ipAddress": "127.0.0.1",
                "port": v.port or 0,
                "healthState": "HEALTHY" if v.health == "HEALTHY" else "UNHEALTHY",
            }
            for v in (group.views() if group is not None else ())
        ]
        return {"kind": "compute#backendServiceGroupHealth", "healthStatus": statuses}
