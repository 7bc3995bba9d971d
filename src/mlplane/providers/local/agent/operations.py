"""Operations of the local agent: created PENDING when a mutation is accepted, DONE (possibly
with an error) when the agent has done the work. `requestId` makes a retried mutation return
the operation of the first call instead of repeating it.

Two shapes, as Google has them: Compute Engine operations (`OperationRecord`, polled at
`.../global|zones/Z/operations/NAME[/wait]`), and google.longrunning operations of the other
APIs (`LongRunning`: `{name, done, metadata, response | error}` at `v1/operations/NAME`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from mlplane.apis.errors import ApiError, not_found
from mlplane.model.compute import ResourceKey, Verb
from mlplane.providers.base import Operation, OperationError, OperationStatus
from mlplane.providers.errors import InvalidRequest, NotFound

KEEP = 5000
_seq = itertools.count(1)


def numeric_id() -> str:
    """A Compute-style numeric id (uint64, as a string)."""
    return str(10**18 + secrets.randbelow(8 * 10**18))


@dataclass
class OperationRecord:
    name: str
    target: ResourceKey
    verb: Verb
    scope: str  # global | zones/Z
    op_type: str = ""  # Compute's operationType: insert, delete, patch, setUrlMap, ...
    user: str = ""  # the caller's email
    target_id: str = ""
    status: OperationStatus = OperationStatus.PENDING
    error: OperationError | None = None
    request_id: str = ""
    id: str = field(default_factory=numeric_id)
    inserted: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def snapshot(self) -> Operation:
        progress = 100 if self.status is OperationStatus.DONE else 0
        return Operation(
            self.name, self.target, self.verb, self.status, self.error, self.scope, progress
        )


class Operations:
    def __init__(self) -> None:
        self._ops: OrderedDict[str, OperationRecord] = OrderedDict()
        self._by_request: dict[str, str] = {}

    def start(
        self,
        target: ResourceKey,
        verb: Verb,
        scope: str,
        request_id: str,
        *,
        op_type: str = "",
        user: str = "",
        target_id: str = "",
    ) -> OperationRecord:
        name = f"operation-{int(time.time() * 1000)}-{next(_seq)}-{secrets.token_hex(4)}"
        rec = OperationRecord(
            name, target, verb, scope, op_type or str(verb), user, target_id,
            request_id=request_id,
        )  # fmt: skip
        self._ops[name] = rec
        if request_id:
            self._by_request[request_id] = name
        while len(self._ops) > KEEP:
            _, old = self._ops.popitem(last=False)
            if old.request_id:
                self._by_request.pop(old.request_id, None)
        return rec

    def restore(
        self, target: ResourceKey, verb: Verb, scope: str, request_id: str, **done: Any
    ) -> OperationRecord:
        """An operation a previous agent started, DONE (the restart completed its work), so
        that a retry with its request id gets it back. `done` holds the recorded fields (name,
        op_type, user, target_id, id, inserted, error)."""
        rec = OperationRecord(target=target, verb=verb, scope=scope, request_id=request_id, **done)
        rec.status, rec.started, rec.ended = OperationStatus.DONE, rec.inserted, time.time()
        rec.done.set()
        self._ops[rec.name] = rec
        if request_id:
            self._by_request[request_id] = rec.name
        return rec

    def replay(self, request_id: str, target: ResourceKey, verb: Verb) -> OperationRecord | None:
        """The operation of an earlier call with this request id, or None."""
        name = self._by_request.get(request_id) if request_id else None
        rec = self._ops.get(name) if name else None
        if rec is None:
            return None
        if rec.target != target or rec.verb is not verb:
            raise InvalidRequest(
                f"requestId '{request_id}' was already used for {rec.verb} {rec.target}", target
            )
        return rec

    def running(self, rec: OperationRecord) -> None:
        rec.status = OperationStatus.RUNNING
        rec.started = time.time()

    def finish(self, rec: OperationRecord, error: OperationError | None = None) -> None:
        rec.status = OperationStatus.DONE
        rec.error = error
        rec.started = rec.started or time.time()
        rec.ended = time.time()
        rec.done.set()

    def get(self, name: str) -> OperationRecord:
        rec = self._ops.get(name)
        if rec is None:
            raise NotFound(f"The resource 'operations/{name}' was not found")
        return rec

    def in_scope(self, scope: str) -> list[OperationRecord]:
        return [r for r in self._ops.values() if r.scope == scope]

    async def wait(self, name: str, timeout: float) -> OperationRecord:
        rec = self.get(name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rec.done.wait(), timeout)
        return rec


@dataclass
class LongRunning:
    """A google.longrunning.Operation of Service Management, Service Usage or Cloud Build."""

    name: str  # operations/...
    metadata: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] | None = None
    error: ApiError | None = None
    done: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "done": self.done}
        if self.metadata:
            out["metadata"] = self.metadata
        if self.done and self.error is not None:
            out["error"] = {
                "code": _RPC_CODES.get(self.error.code, 2),
                "message": self.error.message,
            }
        elif self.done:
            out["response"] = self.response or {}
        return out

    def finish(self, response: dict[str, Any] | None = None, error: ApiError | None = None) -> None:
        self.response, self.error, self.done = response, error, True
        self.finished.set()


# HTTP status -> google.rpc.Code, for a failed long-running operation's `error.code`.
_RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 412: 9, 429: 8, 500: 13, 503: 14}


class LongRunningOperations:
    def __init__(self) -> None:
        self._ops: OrderedDict[str, LongRunning] = OrderedDict()

    def start(
        self, prefix: str = "operations", metadata: dict[str, Any] | None = None
    ) -> LongRunning:
        name = f"{prefix}/{secrets.token_hex(8)}"
        op = LongRunning(name, dict(metadata or {}))
        self._ops[name] = op
        while len(self._ops) > KEEP:
            self._ops.popitem(last=False)
        return op

    def done(
        self,
        response: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        prefix: str = "operations",
    ) -> LongRunning:
        op = self.start(prefix, metadata)
        op.finish(response)
        return op

    def get(self, name: str) -> LongRunning:
        op = self._ops.get(name)
        if op is None:
            raise not_found(name)
        return op
