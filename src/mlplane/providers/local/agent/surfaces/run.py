"""Cloud Run Admin v2 as the agent serves it: services (create, get, list, patch, delete), their
revisions (get, list, delete) and long-running operations (get, list, wait, delete), at
`/run/v2/...`; gcloud's v1 view of the same services is `run_v1.py`.

Each method is authorized as Cloud Run does: `run.services.create|get|list|update|delete`,
`run.revisions.get|list|delete`, `run.operations.get|list|delete` on the project, and
`iam.serviceAccounts.actAs` on the template's service account for a create or an update that
runs as one. Mutations answer with an operation at once and do the work (start the new
revision, wait until it is ready, route the traffic) in it (`agent/cloudrun.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlplane.apis.discovery import load
from mlplane.apis.errors import ApiError, bad_request, not_found
from mlplane.model.refs import ResourceRef

from ..auth import Caller, Gate
from ..cloudrun import CloudRun, RevisionRecord, ServiceRecord, revision_name, template_changed
from ..gateway import Call, Handler, Surface
from . import run_views

API = load("run")
_SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"
_REVISION_TYPE = "type.googleapis.com/google.cloud.run.v2.Revision"
_KEEP = (
    "description",
    "labels",
    "annotations",
    "ingress",
    "launchStage",
    "template",
    "traffic",
    "client",
    "clientVersion",
    "scaling",
    "invokerIamDisabled",
    "defaultUriDisabled",
)


@dataclass
class OperationRecord:
    name: str
    service: str
    kind: str  # create, update, delete
    done: bool = False
    error: str = ""
    created: float = field(default_factory=time.time)
    snapshot: dict[str, Any] | None = None  # the service as the operation left it (delete)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class RunApi:
    def __init__(self, gate: Gate, run: CloudRun, region: str, allocate: Callable[[], int]) -> None:
        self.gate = gate
        self.run = run
        self.region = region
        self.allocate = allocate  # a port for a new service's front end
        self.operations: dict[str, OperationRecord] = {}

    @property
    def project(self) -> str:
        return self.gate.project

    def surface(self) -> Surface:
        p = "run.projects.locations."
        handlers: dict[str, Handler] = {
            p + "services.create": self._create,
            p + "services.get": self._get,
            p + "services.list": self._list,
            p + "services.patch": self._patch,
            p + "services.delete": self._delete,
            p + "services.revisions.get": self._revision_get,
            p + "services.revisions.list": self._revision_list,
            p + "services.revisions.delete": self._revision_delete,
            p + "operations.get": self._operation_get,
            p + "operations.list": self._operation_list,
            p + "operations.wait": self._operation_wait,
            p + "operations.delete": self._operation_delete,
        }
        return Surface(API, "/run/", handlers)

    # -- names and views -----------------------------------------------------------------------

    def _location(self, call: Call) -> str:
        project = call.param("projectsId")
        if project != self.project:
            raise ApiError(403, f"Permission denied on resource project {project}.", "forbidden")
        location = call.param("locationsId")
        if location not in (self.region, "-"):
            raise not_found(
                f"Location {location} is not served here (the project's region is {self.region})"
            )
        return self.region

    def service_name(self, svc: ServiceRecord) -> str:
        return run_views.service_name(self.project, svc)

    def service_json(self, svc: ServiceRecord) -> dict[str, Any]:
        return run_views.service_json(self.project, svc)

    def revision_json(self, svc: ServiceRecord, rev: RevisionRecord) -> dict[str, Any]:
        return run_views.revision_json(self.project, svc, rev, self.run.host.paths.logs)

    # -- services --------------------------------------------------------------------------------

    def _service(self, call: Call) -> ServiceRecord:
        self._location(call)
        svc = self.run.services.get(call.param("servicesId"))
        if svc is None:
            raise not_found(
                f"Resource 'projects/{self.project}/locations/{self.region}/services/"
                f"{call.param('servicesId')}' was not found"
            )
        return svc

    def _act_as(self, caller: Caller, body: dict[str, Any]) -> None:
        account = str((body.get("template") or {}).get("serviceAccount") or "")
        if account:
            ref = ResourceRef("serviceAccount", account, self.project)
            self.gate.require(caller, ("iam.serviceAccounts.actAs",), ref)

    @staticmethod
    def _kept(body: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in body.items() if k in _KEEP}

    @classmethod
    def _checked(cls, body: dict[str, Any]) -> dict[str, Any]:
        """The Service fields the agent keeps, checked as a whole service."""
        containers = (body.get("template") or {}).get("containers") or []
        if not containers or not containers[0].get("image"):
            raise bad_request("service.template.containers[0].image is required", "required")
        if len(containers) > 1:
            raise bad_request("the local agent runs one container per revision (no sidecars)")
        for t in body.get("traffic") or ():
            if int(t.get("percent", 0) or 0) < 0:
                raise bad_request("traffic percent must be >= 0")
        total = sum(int(t.get("percent", 0) or 0) for t in body.get("traffic") or ())
        if body.get("traffic") and total != 100:
            raise bad_request(f"traffic percents add up to {total}, not 100")
        return cls._kept(body)

    async def _create(self, call: Call) -> object:
        location = self._location(call)
        self.gate.require_project(call.caller, "run.services.create")
        name = call.param("serviceId")
        if not name:
            raise bad_request("serviceId is required", "required")
        body = self._checked(call.body or {})
        self._act_as(call.caller, body)
        if call.param("validateOnly") == "true":
            return {"name": "", "done": True}
        if name in self.run.services:
            raise ApiError(409, f"Resource '{name}' already exists.", "alreadyExists")
        svc = ServiceRecord(name, location, body, call.caller.principal.email, self.allocate())
        svc.reconciling = True  # until its operation ends (a restarted agent completes it)
        self.run.services[name] = svc
        try:
            self.run.save(svc)
        except OSError as exc:
            del self.run.services[name]
            self.run.host.ports.release(svc.port)
            raise _unrecorded(svc, exc) from None
        return self._start(svc, "create", self._rollout(svc, new_revision=True))

    async def create_declared(self, name: str, body: dict[str, Any], creator: str) -> None:
        """Create a service the project declares (the foundation, applied at the agent's start
        as `mlplane export` applies it on Google: no caller)."""
        if name in self.run.services:
            return
        svc = ServiceRecord(name, self.region, self._checked(body), creator, self.allocate())
        svc.reconciling = True
        self.run.services[name] = svc
        self.run.saved(svc)
        self._start(svc, "create", self._rollout(svc, new_revision=True))

    async def _get(self, call: Call) -> object:
        svc = self._service(call)
        self.gate.require_project(call.caller, "run.services.get")
        return self.service_json(svc)

    async def _list(self, call: Call) -> object:
        self._location(call)
        self.gate.require_project(call.caller, "run.services.list")
        return {
            "services": [
                self.service_json(s)
                for s in sorted(self.run.services.values(), key=lambda s: s.name)
            ]
        }

    async def _patch(self, call: Call) -> object:
        svc = self._service(call)
        self.gate.require_project(call.caller, "run.services.update")
        incoming = self._kept(call.body or {})
        mask = [m.strip() for m in call.param("updateMask").split(",") if m.strip()]
        body = copy.deepcopy(svc.body)
        for key, value in incoming.items():
            if not mask or key in mask or any(m.startswith(key + ".") for m in mask):
                body[key] = value
        body = self._checked(body)
        self._act_as(call.caller, body)
        if call.param("validateOnly") == "true":
            return {"name": "", "done": True}
        if svc.reconciling:
            raise ApiError(
                409,
                f"Service '{svc.name}' is being changed: wait for its operation",
                "aborted",
                "ABORTED",
            )
        changed = template_changed(svc.body.get("template") or {}, body.get("template") or {})
        force = call.param("forceNewRevision") == "true"
        before = (svc.body, svc.generation, svc.last_modifier, svc.updated)
        svc.body, svc.generation = body, svc.generation + 1
        svc.last_modifier, svc.updated = call.caller.principal.email, time.time()
        svc.reconciling = True  # until its operation ends (a restarted agent completes it)
        try:
            self.run.save(svc)
        except OSError as exc:
            svc.body, svc.generation, svc.last_modifier, svc.updated = before
            svc.reconciling = False
            raise _unrecorded(svc, exc) from None
        return self._start(svc, "update", self._rollout(svc, new_revision=changed or force))

    async def _delete(self, call: Call) -> object:
        svc = self._service(call)
        self.gate.require_project(call.caller, "run.services.delete")
        op = self._op(svc, "delete")
        op.snapshot = self.service_json(svc)
        if self.run.files is not None:  # accepted: a restarted agent does not bring it back
            self.run.files.delete(svc.name)

        async def work() -> None:
            async with self.run.lock(svc.name):
                await self.run.remove(svc)

        self.run.host.background(self._finish(op, work))
        return self.operation_json(op)

    def _rollout(self, svc: ServiceRecord, *, new_revision: bool) -> Callable[[], Any]:
        async def work() -> None:
            async with self.run.lock(svc.name):
                svc.reconciling, svc.failure = True, ""
                try:
                    if new_revision:
                        template = copy.deepcopy(svc.body.get("template") or {})
                        name = template.get("revision") or revision_name(svc.name, svc.generation)
                        if name in svc.revisions:
                            raise ApiError(
                                409, f"Revision named '{name}' already exists.", "alreadyExists"
                            )
                        rev = RevisionRecord(name, svc.name, svc.generation, template)
                        svc.revisions[name] = rev
                        self.run.saved(svc)  # its name outlives the agent from now on
                        await self.run.start_revision(svc, rev)
                        if rev.state == "FAILED":
                            svc.failure = rev.message
                            raise ApiError(
                                400, rev.message, "failedPrecondition", "FAILED_PRECONDITION"
                            )
                    missing = [r for r, _, _, _ in svc.traffic() if r and r not in svc.revisions]
                    if missing:
                        svc.failure = f"traffic names revisions that do not exist: {missing}"
                        raise ApiError(400, svc.failure, "invalid")
                    try:
                        await self.run.settle(svc)
                    except ValueError as exc:
                        svc.failure = str(exc)
                        raise ApiError(503, str(exc), "unavailable") from None
                finally:
                    svc.reconciling = False
                    svc.updated = time.time()
                    self.run.saved(svc)

        return work

    # -- operations ----------------------------------------------------------------------------

    def _op(self, svc: ServiceRecord, kind: str) -> OperationRecord:
        name = f"projects/{self.project}/locations/{svc.location}/operations/{uuid.uuid4()}"
        op = OperationRecord(name, svc.name, kind)
        self.operations[name] = op
        return op

    def _start(self, svc: ServiceRecord, kind: str, work: Callable[[], Any]) -> object:
        op = self._op(svc, kind)
        self.run.host.background(self._finish(op, work))
        return self.operation_json(op)

    async def _finish(self, op: OperationRecord, work: Callable[[], Any]) -> None:
        try:
            await work()
        except ApiError as exc:
            op.error = exc.message
        except Exception as exc:  # the operation reports it; the agent keeps serving
            op.error = f"{type(exc).__name__}: {exc}"
        finally:
            op.done = True
            op.finished.set()

    def operation_json(self, op: OperationRecord) -> dict[str, Any]:
        svc = self.run.services.get(op.service)
        snapshot = self.service_json(svc) if svc is not None else (op.snapshot or {})
        out: dict[str, Any] = {
            "name": op.name,
            "metadata": {"@type": _SERVICE_TYPE, **snapshot},
            "done": op.done,
        }
        if op.done and op.error:
            out["error"] = {"code": 9, "message": op.error}
        elif op.done:
            out["response"] = {"@type": _SERVICE_TYPE, **snapshot}
        return out

    def _operation(self, call: Call) -> OperationRecord:
        self._location(call)
        name = (
            f"projects/{self.project}/locations/{call.param('locationsId')}/operations/"
            f"{call.param('operationsId')}"
        )
        op = self.operations.get(name)
        if op is None:
            raise not_found(f"Operation '{name}' was not found")
        return op

    async def _operation_get(self, call: Call) -> object:
        op = self._operation(call)
        self.gate.require_project(call.caller, "run.operations.get")
        return self.operation_json(op)

    async def _operation_wait(self, call: Call) -> object:
        op = self._operation(call)
        self.gate.require_project(call.caller, "run.operations.get")
        timeout = float(str((call.body or {}).get("timeout", "60s")).rstrip("s") or 60)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(op.finished.wait(), min(timeout, 300.0))
        return self.operation_json(op)

    async def _operation_list(self, call: Call) -> object:
        self._location(call)
        self.gate.require_project(call.caller, "run.operations.list")
        ops = sorted(self.operations.values(), key=lambda o: o.created)
        return {"operations": [self.operation_json(o) for o in ops]}

    async def _operation_delete(self, call: Call) -> object:
        op = self._operation(call)
        self.gate.require_project(call.caller, "run.operations.delete")
        self.operations.pop(op.name, None)
        return {}

    # -- revisions -----------------------------------------------------------------------------

    def _revision(self, call: Call) -> tuple[ServiceRecord, RevisionRecord]:
        svc = self._service(call)
        rev = svc.revisions.get(call.param("revisionsId"))
        if rev is None:
            raise not_found(f"Revision '{call.param('revisionsId')}' was not found")
        return svc, rev

    async def _revision_get(self, call: Call) -> object:
        svc, rev = self._revision(call)
        self.gate.require_project(call.caller, "run.revisions.get")
        return self.revision_json(svc, rev)

    async def _revision_list(self, call: Call) -> object:
        svc = self._service(call)
        self.gate.require_project(call.caller, "run.revisions.list")
        revs = sorted(svc.revisions.values(), key=lambda r: r.created, reverse=True)
        return {"revisions": [self.revision_json(svc, r) for r in revs]}

    async def _revision_delete(self, call: Call) -> object:
        svc, rev = self._revision(call)
        self.gate.require_project(call.caller, "run.revisions.delete")
        if any(r == rev.name and p > 0 for r, p, _, _ in svc.traffic()):
            raise ApiError(
                400,
                f"Revision '{rev.name}' receives traffic: route it away first",
                "failedPrecondition",
                "FAILED_PRECONDITION",
            )
        op = self._op(svc, "delete-revision")
        json_ = self.revision_json(svc, rev)

        async def work() -> None:
            await self.run.stop_revision(rev)
            svc.revisions.pop(rev.name, None)
            self.run.saved(svc)

        self.run.host.background(self._finish(op, work))
        out = self.operation_json(op)
        out["metadata"] = {"@type": _REVISION_TYPE, **json_}
        return out


def _unrecorded(svc: ServiceRecord, exc: OSError) -> ApiError:
    return ApiError(
        503, f"Service '{svc.name}' cannot be recorded, nothing changed: {exc}", "unavailable"
    )
