"""The client of a dry run (`--dry-run`): reads are sent, nothing else is.

    log = DryRunLog(str(principal))
    apis = DryRunApis(session_apis, log)      # same endpoints, credentials and transport

A GET goes to the API as usual, with the caller's credentials (a plan needs to see what
exists), and is logged as sent. Every other call is logged and answered here, without being
sent: a mutation with a done operation named `dry-run-N` (Compute's shape, or
google.longrunning's), whose polls are answered here too. A server-side operation wait (a POST
that changes nothing) on a real operation is sent as the operation's GET instead. Values the
server would assign (a submitted config's id) come back as `<...>` placeholders, so the calls
that follow show where they go.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from typing import Any

from mlplane.apis.discovery import method as discovery_method
from mlplane.apis.request import DryRunLog
from mlplane.errors import MlplaneError, PermissionDenied
from mlplane.model.compute import ResourceKey
from mlplane.providers.errors import NotFound

from .client import GoogleApis

SYNTHETIC = "dry-run-"
# Values a response would carry that the calls after it use.
PLACEHOLDERS: dict[str, dict[str, Any]] = {
    "servicemanagement.services.configs.submit": {"serviceConfig": {"id": "<CONFIG_ID>"}},
    "servicemanagement.services.rollouts.create": {"rolloutId": "<ROLLOUT_ID>"},
}
_WAITS = ("compute.globalOperations.wait", "compute.zoneOperations.wait",
          "compute.regionOperations.wait")  # fmt: skip


def _polls(method_id: str) -> bool:
    return method_id.endswith(("Operations.get", "Operations.wait", ".operations.get"))


def _operation_name(params: Mapping[str, Any]) -> str:
    return str(params.get("operation") or params.get("name") or "")


def _outcome(exc: MlplaneError) -> str:
    if isinstance(exc, NotFound):
        return "404 not found"
    if isinstance(exc, PermissionDenied):  # Endpoints answers a missing service so, too
        return "403 permission denied"
    return type(exc).__name__


class DryRunApis(GoogleApis):
    """`GoogleApis` that sends reads only (see the module docstring)."""

    records_only = True

    def __init__(self, base: GoogleApis, log: DryRunLog) -> None:
        super().__init__(base.endpoints, base.credentials, base.transport)
        self.log = log
        self._numbers = itertools.count(1)
        self._answers: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def call(
        self,
        method_id: str,
        params: Mapping[str, Any],
        body: Any = None,
        *,
        key: ResourceKey | None = None,
        timeout: float | None = None,
    ) -> Any:
        if _polls(method_id) and SYNTHETIC in _operation_name(params):
            with self._lock:
                return self._answers[_operation_name(params)]
        if method_id in _WAITS:  # a wait on a real operation: its GET is enough here
            method_id = method_id.removesuffix(".wait") + ".get"
        req = self.request(method_id, params, body)
        if req.mutates:
            self.log.send(req)
            return self._answer(method_id, params)
        try:
            result = super().call(method_id, params, body, key=key, timeout=timeout)
        except MlplaneError as exc:
            self.log.read(req, _outcome(exc))
            raise
        self.log.read(req)
        return result

    def _answer(self, method_id: str, params: Mapping[str, Any]) -> Any:
        if discovery_method(method_id).response != "Operation":
            return {}
        n = next(self._numbers)
        if method_id.startswith("compute."):
            op: dict[str, Any] = {
                "kind": "compute#operation",
                "name": f"{SYNTHETIC}{n}",
                "status": "DONE",
                "progress": 100,
                "operationType": method_id.rsplit(".", 1)[1],
            }
            if params.get("zone"):
                op["zone"] = str(params["zone"])
        else:
            response = PLACEHOLDERS.get(method_id, {})
            op = {"name": f"operations/{SYNTHETIC}{n}", "done": True, "response": response}
        with self._lock:
            self._answers[op["name"]] = op
        return op
