"""The JSON the local agent and its clients exchange, as typed values on both sides.

Operations look like Compute Engine's (`name`, `status`, `operationType`, `error.errors[]`,
`httpErrorStatusCode`); errors like Google's (`{"error": {"code", "message", "errors":
[{"reason"}]}}`), so the client maps them with the same `error_for_status` as the gcp provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mlplane.model.compute import ResourceKey, Verb
from mlplane.providers.base import Operation, OperationError, OperationStatus


def operation_to_json(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": op.name,
        "targetKind": op.target.kind,
        "targetName": op.target.name,
        "operationType": str(op.verb),
        "status": str(op.status),
        "scope": op.scope,
        "progress": op.progress,
    }
    if op.error is not None:
        out["error"] = {"errors": [{"code": op.error.code, "message": op.error.message}]}
        if op.error.http_status is not None:
            out["httpErrorStatusCode"] = op.error.http_status
    return out


def operation_from_json(d: Mapping[str, Any]) -> Operation:
    error = None
    if d.get("error"):
        first = d["error"]["errors"][0]
        error = OperationError(first["code"], first["message"], d.get("httpErrorStatusCode"))
    return Operation(
        name=d["name"],
        target=ResourceKey(d["targetKind"], d["targetName"]),
        verb=Verb(d["operationType"]),
        status=OperationStatus(d["status"]),
        error=error,
        scope=d.get("scope", "global"),
        progress=int(d.get("progress", 0)),
    )


def error_body(status: int, reason: str, message: str, used_by: str = "") -> dict[str, Any]:
    err: dict[str, Any] = {
        "code": status,
        "message": message,
        "errors": [{"reason": reason, "message": message}],
    }
    if used_by:
        err["usedBy"] = used_by
    return {"error": err}


@dataclass(frozen=True)
class ApiErrorInfo:
    status: int
    reason: str
    message: str
    used_by: str = ""

    @classmethod
    def from_body(cls, status: int, body: object) -> ApiErrorInfo:
        err = body.get("error") if isinstance(body, Mapping) else None
        if not isinstance(err, Mapping):
            return cls(status, "", f"HTTP {status}: {body!r}"[:500])
        errors = err.get("errors") or [{}]
        return cls(
            status,
            str(errors[0].get("reason", "")),
            str(err.get("message", "")),
            str(err.get("usedBy", "")),
        )


@dataclass(frozen=True)
class ResourceView:
    """One resource as the agent holds it."""

    kind: str
    name: str
    spec: dict[str, Any]
    lifecycle: str
    state: str
    owner: str
    fingerprint: str | None = None
    self_link: str = ""
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ResourceView:
        return cls(**{k: d[k] for k in d if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ReplicaView:
    """One process of a managed instance group, or a standalone instance (group empty)."""

    group: str
    name: str
    pid: int | None
    port: int | None
    metadata_port: int | None
    status: str
    health: str
    service_account: str
    restarts: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ReplicaView:
        return cls(**{k: d[k] for k in d if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class AgentStatus:
    pid: int
    port: int
    project: str
    started_at: float
    resources: tuple[ResourceView, ...]
    replicas: tuple[ReplicaView, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "port": self.port,
            "project": self.project,
            "startedAt": self.started_at,
            "resources": [r.to_json() for r in self.resources],
            "replicas": [r.to_json() for r in self.replicas],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AgentStatus:
        return cls(
            pid=int(d["pid"]),
            port=int(d["port"]),
            project=str(d["project"]),
            started_at=float(d["startedAt"]),
            resources=tuple(ResourceView.from_json(r) for r in d["resources"]),
            replicas=tuple(ReplicaView.from_json(r) for r in d["replicas"]),
        )
