"""Cloud Run Admin v1 (Knative's shapes) as a read-only view of the agent's Cloud Run services:
what gcloud's `run services describe|list` and `run revisions list` call, at
`/run/apis/serving.knative.dev/v1/namespaces/NAMESPACE/...` (regional) and
`/run/v1/projects/P/locations/L/...` (global). The namespace is the project id or its number.
Reads need the same permissions as v2's (`run.services.get|list`, `run.revisions.get|list`).
"""

from __future__ import annotations

from typing import Any

from mlplane.apis.discovery import load
from mlplane.apis.errors import not_found

from ..cloudrun import LATEST, RevisionRecord, ServiceRecord
from ..gateway import Call, Handler, Surface
from ..metadata import project_number
from .compute_views import rfc3339
from .run import RunApi

API = load("run", "v1")
KNATIVE = "serving.knative.dev/v1"
_STATUS = {"READY": "True", "RETIRED": "True", "FAILED": "False", "PENDING": "Unknown"}


class RunV1View:
    def __init__(self, v2: RunApi) -> None:
        self.v2 = v2

    def surface(self) -> Surface:
        handlers: dict[str, Handler] = {
            "run.namespaces.services.get": self._service_get,
            "run.namespaces.services.list": self._service_list,
            "run.namespaces.revisions.get": self._revision_get,
            "run.namespaces.revisions.list": self._revision_list,
            "run.projects.locations.services.get": self._service_get,
            "run.projects.locations.services.list": self._service_list,
            "run.projects.locations.revisions.list": self._revision_list,
        }
        return Surface(API, "/run/", handlers)

    @property
    def project(self) -> str:
        return self.v2.project

    def _check(self, call: Call) -> None:
        namespace = call.param("namespacesId") or call.param("projectsId")
        if namespace not in (self.project, str(project_number(self.project))):
            raise not_found(f"Namespace {namespace} was not found")

    # -- views ---------------------------------------------------------------------------------

    def _meta(
        self,
        name: str,
        kind: str,
        created: float,
        generation: int,
        uid: str,
        labels: dict[str, str],
        annotations: dict[str, str],
    ) -> dict[str, Any]:
        number = project_number(self.project)
        return {
            "name": name,
            "namespace": str(number),
            "selfLink": f"/apis/{KNATIVE}/namespaces/{number}/{kind}/{name}",
            "uid": uid,
            "resourceVersion": f"r{generation}",
            "generation": generation,
            "creationTimestamp": rfc3339(created),
            "labels": {"cloud.googleapis.com/location": self.v2.region, **labels},
            "annotations": annotations,
        }

    def _revision_spec(self, template: dict[str, Any]) -> dict[str, Any]:
        containers = []
        for c in template.get("containers") or ():
            out: dict[str, Any] = {
                "image": c.get("image", ""),
                "ports": [{"name": "http1", "containerPort": 8080}],
            }
            if c.get("command"):
                out["command"] = list(c["command"])
            if c.get("args"):
                out["args"] = list(c["args"])
            if c.get("env"):
                out["env"] = [
                    {"name": e["name"], "value": e.get("value", "")}
                    for e in c["env"]
                    if "name" in e
                ]
            containers.append(out)
        timeout = str(template.get("timeout", "300s")).rstrip("s") or "300"
        return {
            "containerConcurrency": int(template.get("maxInstanceRequestConcurrency", 80)),
            "timeoutSeconds": int(float(timeout)),
            "serviceAccountName": template.get("serviceAccount", ""),
            "containers": containers,
        }

    def service(self, svc: ServiceRecord) -> dict[str, Any]:
        v2 = self.v2.service_json(svc)
        ready = v2["terminalCondition"]["state"]
        status = {"CONDITION_SUCCEEDED": "True", "CONDITION_FAILED": "False"}.get(ready, "Unknown")
        when = rfc3339(svc.updated)
        condition = {"type": "Ready", "status": status, "lastTransitionTime": when}
        if svc.failure:
            condition["message"] = svc.failure
        template = svc.body.get("template") or {}
        traffic_spec = []
        for t in v2["traffic"]:
            entry: dict[str, Any] = {"percent": int(t.get("percent", 0))}
            if t.get("type", LATEST) == LATEST:
                entry["latestRevision"] = True
            else:
                entry["revisionName"] = t.get("revision", "")
            if t.get("tag"):
                entry["tag"] = t["tag"]
            traffic_spec.append(entry)
        annotations = {
            "serving.knative.dev/creator": svc.creator,
            "serving.knative.dev/lastModifier": svc.last_modifier or svc.creator,
            "run.googleapis.com/ingress": "all",
            **svc.body.get("annotations", {}),
        }
        return {
            "apiVersion": KNATIVE,
            "kind": "Service",
            "metadata": self._meta(
                svc.name,
                "services",
                svc.created,
                svc.generation,
                svc.uid,
                svc.body.get("labels", {}),
                annotations,
            ),
            "spec": {
                "template": {
                    "metadata": {"annotations": template.get("annotations", {})},
                    "spec": self._revision_spec(template),
                },
                "traffic": traffic_spec,
            },
            "status": {
                "observedGeneration": svc.generation,
                "conditions": [
                    condition,
                    {**condition, "type": "ConfigurationsReady"},
                    {**condition, "type": "RoutesReady"},
                ],
                "latestReadyRevisionName": (svc.latest_ready.name if svc.latest_ready else ""),
                "latestCreatedRevisionName": (
                    svc.latest_created.name if svc.latest_created else ""
                ),
                "traffic": [
                    {
                        "revisionName": rev,
                        "percent": percent,
                        **({"latestRevision": True} if kind == LATEST else {}),
                    }
                    for rev, percent, kind, _ in svc.traffic()
                    if rev
                ],
                "url": v2["uri"],
                "address": {"url": v2["uri"]},
            },
        }

    def revision(self, svc: ServiceRecord, rev: RevisionRecord) -> dict[str, Any]:
        labels = {
            "serving.knative.dev/service": svc.name,
            "serving.knative.dev/configuration": svc.name,
            "serving.knative.dev/configurationGeneration": str(rev.generation),
            **rev.template.get("labels", {}),
        }
        serving = any(r == rev.name and p > 0 for r, p, _, _ in svc.traffic())
        annotations = {
            "serving.knative.dev/creator": svc.last_modifier or svc.creator,
            **rev.template.get("annotations", {}),
        }
        condition: dict[str, Any] = {
            "type": "Ready",
            "status": _STATUS[rev.state],
            "lastTransitionTime": rfc3339(rev.created),
        }
        if rev.message:
            condition["message"] = rev.message
        active = {
            "type": "Active",
            "status": "True" if serving else "False",
            "lastTransitionTime": rfc3339(rev.created),
        }
        return {
            "apiVersion": KNATIVE,
            "kind": "Revision",
            "metadata": self._meta(
                rev.name, "revisions", rev.created, 1, rev.uid, labels, annotations
            ),
            "spec": self._revision_spec(rev.template),
            "status": {
                "observedGeneration": 1,
                "conditions": [condition, active],
                "logUrl": f"file://{self.v2.run.host.paths.logs / f'run-{rev.name}.log'}",
                "serviceName": svc.name,
            },
        }

    # -- handlers ------------------------------------------------------------------------------

    async def _service_get(self, call: Call) -> object:
        self._check(call)
        self.v2.gate.require_project(call.caller, "run.services.get")
        svc = self.v2.run.services.get(call.param("servicesId"))
        if svc is None:
            raise not_found(
                f"Resource '{call.param('servicesId')}' of kind 'SERVICE' in region "
                f"'{self.v2.region}' in project '{self.project}' does not exist."
            )
        return self.service(svc)

    async def _service_list(self, call: Call) -> object:
        self._check(call)
        self.v2.gate.require_project(call.caller, "run.services.list")
        items = [
            self.service(s) for s in sorted(self.v2.run.services.values(), key=lambda s: s.name)
        ]
        return {
            "apiVersion": KNATIVE,
            "kind": "ServiceList",
            "items": items,
            "metadata": {},
            "unreachable": [],
        }

    def _revisions(self, selector: str) -> list[tuple[ServiceRecord, RevisionRecord]]:
        wanted = ""
        key, _, value = selector.partition("=")
        if key.strip() == "serving.knative.dev/service":
            wanted = value.strip()
        out = []
        for svc in self.v2.run.services.values():
            if wanted and svc.name != wanted:
                continue
            out += [(svc, r) for r in svc.revisions.values()]
        return sorted(out, key=lambda p: (p[0].name, -p[1].created))

    async def _revision_get(self, call: Call) -> object:
        self._check(call)
        self.v2.gate.require_project(call.caller, "run.revisions.get")
        for svc, rev in self._revisions(""):
            if rev.name == call.param("revisionsId"):
                return self.revision(svc, rev)
        raise not_found(f"Revision '{call.param('revisionsId')}' was not found")

    async def _revision_list(self, call: Call) -> object:
        self._check(call)
        self.v2.gate.require_project(call.caller, "run.revisions.list")
        items = [self.revision(s, r) for s, r in self._revisions(call.param("labelSelector"))]
        return {
            "apiVersion": KNATIVE,
            "kind": "RevisionList",
            "items": items,
            "metadata": {},
            "unreachable": [],
        }
