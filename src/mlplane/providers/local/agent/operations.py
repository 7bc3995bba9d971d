"""Operations of the local agent: created PENDING when a mutation is accepted, DONE (possibly
with an error) when the agent has done the work. `requestId` makes a retried mutation return
the operation of the first call instead of repeating it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from mlplane.model.compute import ResourceKey, Verb
from mlplane.providers.base import Operation, OperationError, OperationStatus
from mlplane.providers.errors import InvalidRequest, NotFound

KEEP = 5000
_seq = itertools.count(1)


@dataclass
class OperationRecord:
    name: str
    target: ResourceKey
    verb: Verb
    scope: str
    status: OperationStatus = OperationStatus.PENDING
    error: OperationError | None = None
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
        self, target: ResourceKey, verb: Verb, scope: str, request_id: str
    ) -> OperationRecord:
        name = f"operation-{next(_seq)}-{secrets.token_hex(4)}"
        rec = OperationRecord(name, target, verb, scope)
        self._ops[name] = rec
        if request_id:
            self._by_request[request_id] = name
        while len(self._ops) > KEEP:
            old, _ = self._ops.popitem(last=False)
            for rid in [r for r, n in self._by_request.items() if n == old]:
                del self._by_request[rid]
        return rec

    def replay(self, request_id: str, target: ResourceKey, verb: Verb) -> Operation | None:
        """The operation of an earlier call with this request id, or None."""
        name = self._by_request.get(request_id) if request_id else None
        rec = self._ops.get(name) if name else None
        if rec is None:
            return None
        if rec.target != target or rec.verb is not verb:
            raise InvalidRequest(
                f"requestId '{request_id}' was already used for {rec.verb} {rec.target}", target
            )
        return rec.snapshot()

    def running(self, rec: OperationRecord) -> None:
        rec.status = OperationStatus.RUNNING

    def finish(self, rec: OperationRecord, error: OperationError | None = None) -> None:
        rec.status = OperationStatus.DONE
        rec.error = error
        rec.done.set()

    def get(self, name: str) -> OperationRecord:
        rec = self._ops.get(name)
        if rec is None:
            raise NotFound(f"The operation '{name}' was not found")
        return rec

    async def wait(self, name: str, timeout: float) -> Operation:
        rec = self.get(name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rec.done.wait(), timeout)
        return rec.snapshot()
