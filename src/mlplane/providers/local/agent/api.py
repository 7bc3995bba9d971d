"""The agent's HTTP API (127.0.0.1 only). Thin: authenticate, parse, call the service, render.

GET    /healthz                                   liveness (no token)
GET    /openapi.json                              merged Endpoints OpenAPI (no token)
GET    /v1/status                                 every resource and replica (CLI token only)
GET    /v1/resources/{kind}                       list
POST   /v1/resources/{kind}                       create  {"spec", "requestId"} -> operation
GET    /v1/resources/{kind}/{name}                get
PUT    /v1/resources/{kind}/{name}                update  {"spec", "fingerprint", "requestId"}
DELETE /v1/resources/{kind}/{name}?requestId=     delete -> operation
GET    /v1/resources/instanceGroupManager/{name}/managedInstances
GET    /v1/operations/{name}[?wait=SECONDS]       poll, or wait up to 60 s for DONE
GET|DELETE /compute/v1/projects/P/{global|zones/Z}/{collection}/{name}
                                                  Compute-style paths, for workload code
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from mlplane.errors import ConfigError, MlplaneError, PermissionDenied
from mlplane.model.compute import SPEC_TYPES, ResourceKey, spec_from_data
from mlplane.model.compute_base import COLLECTION_KINDS
from mlplane.providers.errors import (
    AlreadyExists,
    FingerprintConflict,
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
    ResourceInUse,
)
from mlplane.providers.local.wire import AgentStatus, error_body, operation_to_json

from .auth import Caller, Unauthenticated
from .http_server import BadRequest, Request, Response
from .service import ResourceService

_COMPUTE = re.compile(
    r"/compute/v1/projects/(?P<project>[^/]+)/(?:global|zones/[^/]+)/(?P<coll>[A-Za-z]+)/(?P<name>[^/]+)"
)
_ERRORS: tuple[tuple[type[MlplaneError], int, str], ...] = (
    (PermissionDenied, 403, "forbidden"),
    (NotFound, 404, "notFound"),
    (AlreadyExists, 409, "alreadyExists"),
    (FingerprintConflict, 412, "conditionNotMet"),
    (ResourceInUse, 400, "resourceInUseByAnotherResource"),
    (ProviderUnavailable, 503, "resourceNotReady"),
    (InvalidRequest, 400, "invalid"),
    (ConfigError, 400, "invalid"),
)


class Api:
    def __init__(
        self, service: ResourceService, status: Callable[[], AgentStatus], started_at: float
    ) -> None:
        self.service = service
        self.status = status
        self.started_at = started_at

    async def handle(self, req: Request) -> Response:
        try:
            return await self._route(req)
        except Unauthenticated as exc:
            return Response.json(401, error_body(401, "unauthorized", str(exc)))
        except BadRequest as exc:
            return Response.json(400, error_body(400, "badRequest", str(exc)))
        except ValidationError as exc:
            return Response.json(400, error_body(400, "invalid", _validation_message(exc)))
        except MlplaneError as exc:
            for cls, status, reason in _ERRORS:
                if isinstance(exc, cls):
                    used_by = exc.used_by if isinstance(exc, ResourceInUse) else ""
                    return Response.json(status, error_body(status, reason, str(exc), used_by))
            return Response.json(400, error_body(400, "invalid", str(exc)))

    async def _route(self, req: Request) -> Response:
        path, method = req.path, req.method
        if path == "/healthz" and method == "GET":
            body = {"status": "ok", "pid": os.getpid(), "startedAt": self.started_at}
            return Response.json(200, body)
        if path == "/openapi.json" and method in ("GET", "HEAD"):
            return Response.json(200, self.service.runtime.openapi())
        parts = path.strip("/").split("/")
        if parts == ["v1", "status"] and method == "GET":
            self.service.gate.require_operator(req.headers)
            return Response.json(200, self.status().to_json())
        caller = self.service.gate.caller(req.headers)
        if parts[:2] == ["v1", "operations"] and len(parts) == 3 and method == "GET":
            return await self._operation(caller, parts[2], req.query.get("wait"))
        if parts[:2] == ["v1", "resources"] and len(parts) >= 3:
            return await self._resources(caller, req, parts[2:])
        m = _COMPUTE.fullmatch(path)
        if m and method in ("GET", "DELETE"):
            return self._compute(caller, req, m)
        return Response.json(404, error_body(404, "notFound", f"no route {method} {path}"))

    async def _operation(self, caller: Caller, name: str, wait: str | None) -> Response:
        rec = self.service.operation(caller, name)
        if wait:
            try:
                seconds = min(max(float(wait), 0.0), 60.0)
            except ValueError:
                raise BadRequest(f"wait={wait!r} is not a number of seconds") from None
            op = await self.service.ops.wait(rec.name, seconds)
        else:
            op = rec.snapshot()
        return Response.json(200, operation_to_json(op))

    async def _resources(self, caller: Caller, req: Request, parts: list[str]) -> Response:
        kind = parts[0]
        if kind not in SPEC_TYPES:
            raise NotFound(f"unknown resource kind '{kind}' (one of {', '.join(SPEC_TYPES)})")
        svc, method = self.service, req.method
        if len(parts) == 1:
            if method == "GET":
                return Response.json(200, {"items": [v.to_json() for v in svc.list(caller, kind)]})
            if method == "POST":
                body = _object(req.json())
                spec = spec_from_data(kind, _object(body.get("spec")))
                op = svc.create(caller, spec, str(body.get("requestId") or ""))
                return Response.json(200, operation_to_json(op))
        key = ResourceKey(kind, parts[1])
        if len(parts) == 2:
            if method == "GET":
                return Response.json(200, svc.get(caller, key).to_json())
            if method == "PUT":
                body = _object(req.json())
                spec = spec_from_data(kind, _object(body.get("spec")))
                if spec.name != key.name:
                    raise BadRequest(f"the spec names '{spec.name}', the path '{key.name}'")
                fingerprint = body.get("fingerprint")
                op = svc.update(caller, spec, fingerprint, str(body.get("requestId") or ""))
                return Response.json(200, operation_to_json(op))
            if method == "DELETE":
                op = svc.delete(caller, key, req.query.get("requestId", ""))
                return Response.json(200, operation_to_json(op))
        if len(parts) == 3 and parts[2] == "managedInstances" and method == "GET":
            svc.get(caller, key)  # authorizes and 404s
            group = svc.runtime.groups.get(key.name)
            items = [v.to_json() for v in group.views()] if group else []
            return Response.json(200, {"items": items})
        return Response.json(405, error_body(405, "badRequest", f"{method} not allowed here"))

    def _compute(self, caller: Caller, req: Request, m: re.Match[str]) -> Response:
        kind = COLLECTION_KINDS.get(m["coll"])
        if (
            m["project"] != self.service.gate.project
            or kind is None
            or m["coll"] == "instanceGroups"
        ):
            raise NotFound(f"The resource '{req.path}' was not found")
        key = ResourceKey(kind, m["name"])
        if req.method == "DELETE":
            op = self.service.delete(caller, key, req.query.get("requestId", ""))
            return Response.json(200, operation_to_json(op))
        view = self.service.get(caller, key)
        spec = spec_from_data(kind, view.spec)
        body = spec.to_api(self.service.gate.project) | {
            "name": spec.name,
            "selfLink": view.self_link,
            "status": view.state,
        }
        return Response.json(200, body)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("expected a JSON object")
    return value


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return (
        f"invalid spec at {where or 'top level'}: {first.get('msg')} ({exc.error_count()} error(s))"
    )
