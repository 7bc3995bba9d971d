"""Operations as the two kinds of Google API return them, read into `providers.base.Operation`:

- Compute Engine: `{name, status: PENDING|RUNNING|DONE, error.errors[], httpErrorStatusCode,
  zone?}`, polled with `globalOperations`/`zoneOperations` `get` and `wait` (our own poller:
  the official client's ignores a custom endpoint);
- google.longrunning (Service Management, Service Usage, Cloud Build): `{name, done, error |
  response}`, polled with the API's `operations.get`. Its scope is `lro:<api>`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mlplane.model.compute import ResourceKey, Verb
from mlplane.providers.base import Operation, OperationError, OperationStatus

from .client import GoogleApis

# google.rpc.Code -> HTTP status, for a failed long-running operation
_RPC_HTTP = {3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 9: 412, 13: 500, 14: 503, 16: 401}


def compute_operation(data: Mapping[str, Any], key: ResourceKey, verb: Verb) -> Operation:
    error = None
    if data.get("error"):
        first = (data["error"].get("errors") or [{}])[0]
        error = OperationError(
            str(first.get("code", "")),
            str(first.get("message", "")),
            int(data["httpErrorStatusCode"]) if "httpErrorStatusCode" in data else None,
        )
    zone = data.get("zone")
    region = data.get("region")
    scope = "global"
    if isinstance(zone, str) and zone:
        scope = "zones/" + zone.rstrip("/").rsplit("/", 1)[-1]
    elif isinstance(region, str) and region:
        scope = "regions/" + region.rstrip("/").rsplit("/", 1)[-1]
    return Operation(
        name=str(data["name"]),
        target=key,
        verb=verb,
        status=OperationStatus(str(data.get("status", "PENDING"))),
        error=error,
        scope=scope,
        progress=int(data.get("progress", 0)),
    )


def long_running(data: Mapping[str, Any], api: str, key: ResourceKey, verb: Verb) -> Operation:
    error = None
    if data.get("done") and data.get("error"):
        err = data["error"]
        code = int(err.get("code", 2))
        error = OperationError(str(code), str(err.get("message", "")), _RPC_HTTP.get(code, 400))
    return Operation(
        name=str(data["name"]),
        target=key,
        verb=verb,
        status=OperationStatus.DONE if data.get("done") else OperationStatus.RUNNING,
        error=error,
        scope=f"lro:{api}",
    )


def response_of(data: Mapping[str, Any]) -> dict[str, Any]:
    resp = data.get("response")
    return dict(resp) if isinstance(resp, Mapping) else {}


class OperationPoller:
    """Refresh or wait for an operation of either kind."""

    def __init__(self, apis: GoogleApis, project: str) -> None:
        self.apis = apis
        self.project = project

    def _compute_params(self, op: Operation) -> tuple[str, dict[str, Any]]:
        if op.scope.startswith("zones/"):
            return "zoneOperations", {
                "project": self.project,
                "zone": op.scope.removeprefix("zones/"),
                "operation": op.name,
            }
        return "globalOperations", {"project": self.project, "operation": op.name}

    def get(self, op: Operation) -> Operation:
        if op.scope.startswith("lro:"):
            api = op.scope.removeprefix("lro:")
            data = self.apis.call(f"{api}.operations.get", {"name": op.name}, key=op.target)
            return long_running(data, api, op.target, op.verb)
        resource, params = self._compute_params(op)
        data = self.apis.call(f"compute.{resource}.get", params, key=op.target)
        return compute_operation(data, op.target, op.verb)

    def wait(self, op: Operation, timeout: float) -> Operation:
        if op.scope.startswith("lro:"):  # these APIs have no server-side wait: poll
            deadline, delay = time.monotonic() + timeout, 0.01
            op = self.get(op)
            while not op.done and time.monotonic() < deadline:
                time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
                delay = min(delay * 1.5, 0.5)
                op = self.get(op)
            return op
        resource, params = self._compute_params(op)
        data = self.apis.call(
            f"compute.{resource}.wait", params, key=op.target, timeout=max(timeout, 1.0) + 30
        )
        return compute_operation(data, op.target, op.verb)
