"""The agent's resource API semantics, GCP-like: authorize, validate synchronously (404, 409,
412 stale fingerprint, 400 in use or invalid), record, then do the work in an operation.
Every change of a record is written through to its file (`store.save`) before it is answered
and again when its operation ends, so a successor agent finishes what this one accepted.

A failed create leaves nothing behind; a failed update restores the previous spec; a delete is
refused while another resource refers to the target (ResourceInUse, as GCP's
resourceInUseByAnotherResource).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from mlplane.errors import MlplaneError, PermissionDenied
from mlplane.model.compute import (
    Instance,
    Mutability,
    ResourceKey,
    ResourceSpec,
    Verb,
)
from mlplane.providers.base import OperationError
from mlplane.providers.errors import (
    AlreadyExists,
    FingerprintConflict,
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
    ResourceInUse,
)

from .auth import Caller, Gate
from .operations import OperationRecord, Operations
from .runtime import Runtime
from .store import TRACES_KEPT, Record, RequestTrace, ResourceStore, State

log = logging.getLogger(__name__)


class ResourceService:
    def __init__(self, gate: Gate, store: ResourceStore, ops: Operations, runtime: Runtime) -> None:
        self.gate = gate
        self.store = store
        self.ops = ops
        self.runtime = runtime

    # -- mutations -----------------------------------------------------------------------------

    def create(
        self,
        caller: Caller,
        spec: ResourceSpec,
        request_id: str,
        *,
        op_type: str = "insert",
        permissions: tuple[str, ...] | None = None,
    ) -> OperationRecord:
        if permissions is None:
            self.gate.authorize(caller, Verb.CREATE, spec.key, spec)
        else:
            self.gate.require(caller, permissions, self.gate.ref(spec.key))
        replay = self.ops.replay(request_id, spec.key, Verb.CREATE)
        if replay is not None:
            return replay
        if self.store.get(spec.key) is not None:
            raise AlreadyExists(f"The resource '{spec.key}' already exists", spec.key)
        self.store.check_references(spec)
        self.runtime.check(spec, None)
        rec = Record(spec, owner=str(caller.principal))
        self.store.add(rec, save=False)  # written with its operation (`_run`)

        async def work() -> None:
            await self.runtime.apply(spec, None)

        def undo() -> None:
            self.store.remove(spec.key)

        return self._run(caller, rec, Verb.CREATE, request_id, work, undo, op_type)

    def update(
        self,
        caller: Caller,
        spec: ResourceSpec,
        fingerprint: str | None,
        request_id: str,
        *,
        op_type: str = "update",
        check_fingerprint: bool = True,
        permissions: tuple[str, ...] | None = None,
    ) -> OperationRecord:
        """Update a resource in place. `permissions` replaces the kind's update permissions for
        methods that need their own (setUrlMap, resize, setNamedPorts...)."""
        if permissions is None:
            self.gate.authorize(caller, Verb.UPDATE, spec.key, spec)
        else:
            self.gate.require(caller, permissions, self.gate.ref(spec.key))
        replay = self.ops.replay(request_id, spec.key, Verb.UPDATE)
        if replay is not None:
            return replay
        rec = self._idle(spec.key)
        kind = type(spec)
        if kind.MUTABILITY is Mutability.IMMUTABLE:
            raise InvalidRequest(
                f"{spec.key} is immutable: create a new {kind.KIND} (e.g. one per revision) "
                "instead of updating it",
                spec.key,
            )
        if check_fingerprint and kind.FINGERPRINTED and fingerprint != rec.fingerprint:
            raise FingerprintConflict(
                f"Supplied fingerprint '{fingerprint}' does not match the current fingerprint "
                f"of {spec.key}: it changed since it was read; get it again and retry",
                spec.key,
            )
        self.store.check_references(spec)
        self.runtime.check(spec, rec.spec)
        previous = rec.spec
        rec.spec, rec.generation, rec.state = spec, rec.generation + 1, State.UPDATING

        async def work() -> None:
            await self.runtime.apply(spec, previous)

        def undo() -> None:
            rec.spec, rec.state = previous, State.READY

        return self._run(caller, rec, Verb.UPDATE, request_id, work, undo, op_type)

    def delete(self, caller: Caller, key: ResourceKey, request_id: str) -> OperationRecord:
        self.gate.authorize(caller, Verb.DELETE, key)
        replay = self.ops.replay(request_id, key, Verb.DELETE)
        if replay is not None:
            return replay
        if key.kind == Instance.KIND and self.store.get(key) is None:
            group = self.runtime.managed_instance_group(key.name)
            if group is not None:  # a managed instance: its group recreates it
                op = self.ops.start(
                    key, Verb.DELETE, f"zones/{group.spec.zone}", request_id,
                    op_type="delete", user=caller.principal.email,
                )  # fmt: skip
                log.info("delete %s (managed by %s) by %s", key, group.name, caller)
                group.kill_replica(key.name)
                self.ops.finish(op)
                return op
        rec = self._idle(key)
        users = self.store.referrers(key)
        if users:
            project = self.gate.project
            used_by = ", ".join(f"'{_path(self.store, u, project)}'" for u in users)
            raise ResourceInUse(
                f"The {_snake(key.kind)} resource '{_path(self.store, key, project)}' is already "
                f"being used by {used_by}",
                key,
                used_by=used_by,
            )
        rec.state = State.DELETING

        async def work() -> None:
            await self.runtime.remove(rec.spec)
            self.store.remove(key)

        def undo() -> None:
            rec.state = State.READY

        return self._run(caller, rec, Verb.DELETE, request_id, work, undo, "delete")

    def restore_operations(self) -> int:
        """The operations kept with the records a previous agent left, DONE, for requests
        retried with their request ids; returns how many."""
        count = 0
        for rec in self.store.records.values():
            for t in rec.requests:
                error = OperationError(*t.error) if t.error else None
                self.ops.restore(
                    rec.key, Verb(t.verb), t.scope, t.request_id, name=t.name, op_type=t.op_type,
                    user=t.user, target_id=rec.id, id=t.id, inserted=t.inserted, error=error,
                )  # fmt: skip
                count += 1
        return count

    def _idle(self, key: ResourceKey) -> Record:
        rec = self.store.require(key)
        if rec.busy is not None or rec.state == State.DELETING:
            raise ProviderUnavailable(
                f"The resource '{key}' is not ready: operation {rec.busy} is in progress", key
            )
        return rec

    def _run(
        self,
        caller: Caller,
        rec: Record,
        verb: Verb,
        request_id: str,
        work: Callable[[], Awaitable[None]],
        undo: Callable[[], None],
        op_type: str,
    ) -> OperationRecord:
        scope = _scope(rec.spec)
        op = self.ops.start(
            rec.key, verb, scope, request_id,
            op_type=op_type, user=caller.principal.email, target_id=rec.id,
        )  # fmt: skip
        rec.busy = op.name
        if request_id:
            trace = RequestTrace(
                request_id, op.name, str(verb), scope, op.op_type, op.user, op.inserted, op.id
            )
            rec.requests = (*rec.requests[-(TRACES_KEPT - 1) :], trace)
        try:
            self.store.save(rec)  # accepted: what a successor finishes (decision 1601)
        except OSError as exc:
            rec.busy = None
            undo()
            self.ops.finish(op, OperationError("internalError", f"not recorded: {exc}", 500))
            raise
        log.info("%s %s by %s: %s", verb, rec.key, caller, op.name)

        async def run() -> None:
            self.ops.running(op)
            error = None
            try:
                await work()
                if rec.state != State.DELETING:
                    rec.state = State.READY
            except Exception as exc:
                undo()
                error = _operation_error(exc)
                log.warning("%s %s failed: %s", verb, rec.key, error.message)
            finally:
                rec.busy = None
                if error is not None:
                    failed = (error.code, error.message, error.http_status)
                    rec.requests = tuple(
                        replace(t, error=failed) if t.name == op.name else t for t in rec.requests
                    )
                try:  # its state now (a record removed is not written back)
                    self.store.save(rec)
                except OSError as exc:
                    log.error("cannot record %s: %s", rec.key, exc)
                self.runtime.host.notify()
            self.ops.finish(op, error)

        self.runtime.host.background(run())
        return op


def _snake(kind: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in kind)


def _path(store: ResourceStore, key: ResourceKey, project: str) -> str:
    """projects/P/global/urlMaps/NAME: a resource as Google's messages name it."""
    rec = store.get(key)
    link = rec.spec.link if rec is not None else f"global/{key.kind}/{key.name}"
    return f"projects/{project}/{link}"


def _scope(spec: ResourceSpec) -> str:
    zone = getattr(spec, "zone", None)
    return f"zones/{zone}" if isinstance(zone, str) else "global"


def _operation_error(exc: Exception) -> OperationError:
    if isinstance(exc, InvalidRequest):
        return OperationError("invalid", str(exc), 400)
    if isinstance(exc, NotFound):
        return OperationError("notFound", str(exc), 404)
    if isinstance(exc, PermissionDenied):
        return OperationError("forbidden", str(exc), 403)
    if isinstance(exc, MlplaneError):
        return OperationError(type(exc).__name__, str(exc), 400)
    if isinstance(exc, (ValueError, OSError)):
        return OperationError("invalid", str(exc), 400)
    return OperationError("internalError", f"{type(exc).__name__}: {exc}", 500)
