"""The journal: an intent row before every provider mutation, closed with its result.

Protocol for one step (each arrow is a crash point the re-run must survive):

    INTENT    row written (op, spec/changes, a fresh requestId) -- before any provider call
    CALLED    the provider accepted the call (its operation is not journaled yet)
    OPERATION the operation's name is journaled
    FINISHED  the operation is DONE
    RECORDED  state row written and intent closed, in ONE SQLite transaction

A re-run first rolls every open intent of its stacks forward with the *same* requestId (the
provider ignores a duplicate of a request it already took; an AlreadyExists/NotFound answer
is reconciled by observing with `get`), records the outcome, and only then plans. So a crash at
any point neither leaks a resource (the intent names it before it can exist) nor duplicates one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from mlplane.model.compute import (
    Change,
    ResourceKey,
    ResourceSpec,
    Verb,
    change_from_data,
    change_to_data,
    spec_from_data,
    spec_to_data,
)
from mlplane.providers.base import Operation, OperationError, OperationStatus

from .state import CHECK_HINT, StateCorrupt, StateStore, StateWrite, short_reason
from .steps import Op

REPAIR_HINT = "run `mlplane state check --repair` to close it as failed"


class EventKind(StrEnum):
    INTENT = "intent"
    CALLED = "called"
    OPERATION = "operation"
    FINISHED = "finished"
    RECORDED = "recorded"
    FAILED = "failed"


class IntentStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    FAILED = "failed"
    RECOVERED = "recovered"


@dataclass(frozen=True)
class JournalEvent:
    kind: EventKind
    run_id: str
    step_id: str
    key: ResourceKey
    seq: int
    recovering: bool = False  # emitted while rolling forward an intent a dead process left open


@dataclass(frozen=True)
class Intent:
    id: int
    run_id: str
    stack: str  # the stack whose lock covers it (recovery scope)
    owner: str  # the stack that owns the resource's state row
    step_id: str
    key: ResourceKey
    op: Op
    request_id: str
    spec: ResourceSpec | None  # create: the spec; update: the predicted result
    declared: ResourceSpec | None  # update: the declared spec merged into the live object
    changes: tuple[Change, ...]
    operation: Operation | None
    principal: str
    status: IntentStatus
    recovering: bool = False  # being rolled forward by a later run (not stored)

    @property
    def verb(self) -> Verb:
        return Verb(self.op.value)


EventHook = Callable[[JournalEvent], None]


class Journal:
    def __init__(self, store: StateStore, on_event: EventHook | None = None) -> None:
        self.store = store
        self.on_event = on_event
        self._seq = 0
        self._seq_lock = threading.Lock()

    def emit(
        self,
        kind: EventKind,
        run_id: str,
        step_id: str,
        key: ResourceKey,
        *,
        recovering: bool = False,
    ) -> None:
        """Announce a crash point (tests hook here to kill the process at a named one, see
        `mlplane.engine.crashpoints`)."""
        if self.on_event is None:
            return
        with self._seq_lock:
            self._seq += 1
            seq = self._seq
        self.on_event(JournalEvent(kind, run_id, step_id, key, seq, recovering))

    def _emit(self, kind: EventKind, intent: Intent) -> None:
        self.emit(kind, intent.run_id, intent.step_id, intent.key, recovering=intent.recovering)

    def begin(
        self,
        *,
        run_id: str,
        stack: str,
        owner: str,
        step_id: str,
        key: ResourceKey,
        op: Op,
        request_id: str,
        spec: ResourceSpec | None,
        declared: ResourceSpec | None,
        changes: tuple[Change, ...],
        principal: str,
    ) -> Intent:
        payload = json.dumps(
            {
                "spec": spec_to_data(spec) if spec else None,
                "declared": spec_to_data(declared) if declared else None,
                "changes": [change_to_data(c) for c in changes],
            },
            sort_keys=True,
        )
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO journal (run_id, stack, owner, step_id, kind, name, op, request_id, "
                "payload, principal, status, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id, stack, owner, step_id, key.kind, key.name, op.value, request_id,
                    payload, principal, IntentStatus.OPEN.value, time.time(),
                ),
            )  # fmt: skip
            row_id = cur.lastrowid
        assert row_id is not None
        intent = Intent(
            row_id, run_id, stack, owner, step_id, key, op, request_id, spec, declared,
            changes, None, principal, IntentStatus.OPEN,
        )  # fmt: skip
        self.emit(EventKind.INTENT, run_id, step_id, key)
        return intent

    def called(self, intent: Intent) -> None:
        self._emit(EventKind.CALLED, intent)

    def operation(self, intent: Intent, op: Operation) -> Intent:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE journal SET operation = ? WHERE id = ?",
                (json.dumps(_op_to_data(op)), intent.id),
            )
        self._emit(EventKind.OPERATION, intent)
        return replace(intent, operation=op)

    def finished(self, intent: Intent) -> None:
        self._emit(EventKind.FINISHED, intent)

    def complete(
        self, intent: Intent, write: StateWrite | None, status: IntentStatus = IntentStatus.DONE
    ) -> None:
        """Write the result to the state store and close the intent, atomically."""
        with self.store.transaction() as conn:
            if write is not None:
                self.store.apply_write(conn, write)
            conn.execute(
                "UPDATE journal SET status = ?, finished_at = ? WHERE id = ?",
                (status.value, time.time(), intent.id),
            )
        self._emit(EventKind.RECORDED, intent)

    def fail(self, intent: Intent, error: BaseException) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE journal SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                (IntentStatus.FAILED.value, str(error), time.time(), intent.id),
            )
        self._emit(EventKind.FAILED, intent)

    def open_intents(self, stacks: Iterable[str] | None = None) -> list[Intent]:
        """Intents never closed (their process died), oldest first; of `stacks`, else all."""
        sql, args = "SELECT * FROM journal WHERE status = 'open'", []
        if stacks is not None:
            args = sorted(set(stacks))
            sql += f" AND stack IN ({','.join('?' * len(args))})"
        with self.store.connection() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        return [self._decode(r) for r in rows]

    def prune(self, keep: int) -> int:
        """Drop the closed intents older than the newest `keep` rows (the history a user reads
        with `mlplane state check`); open intents stay whatever their age. Returns how many."""
        sql = "FROM journal WHERE status != 'open' AND id <= (SELECT MAX(id) FROM journal) - ?"
        with self.store.connection() as conn:  # read first: a write would be a state change
            if conn.execute(f"SELECT 1 {sql} LIMIT 1", (keep,)).fetchone() is None:
                return 0
        with self.store.transaction() as conn:
            return int(conn.execute(f"DELETE {sql}", (keep,)).rowcount or 0)

    def entries(self, run_id: str | None = None) -> list[Intent]:
        sql, args = "SELECT * FROM journal ORDER BY id", []
        if run_id is not None:
            sql, args = "SELECT * FROM journal WHERE run_id = ? ORDER BY id", [run_id]
        with self.store.connection() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [self._decode(r) for r in rows]

    def _decode(self, row: tuple[Any, ...]) -> Intent:
        try:
            return intent_from_row(row)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            fix = REPAIR_HINT if row[12] == IntentStatus.OPEN else CHECK_HINT
            raise StateCorrupt(
                f"{self.store.path}: {describe_row(row)} is unreadable ({short_reason(exc)}); "
                + fix
            ) from None


def _op_to_data(op: Operation) -> dict[str, Any]:
    err = op.error
    return {
        "name": op.name,
        "kind": op.target.kind,
        "target": op.target.name,
        "verb": op.verb.value,
        "status": op.status.value,
        "scope": op.scope,
        "error": None if err is None else [err.code, err.message, err.http_status],
    }


def _op_from_data(data: dict[str, Any]) -> Operation:
    err = data["error"]
    return Operation(
        name=data["name"],
        target=ResourceKey(data["kind"], data["target"]),
        verb=Verb(data["verb"]),
        status=OperationStatus(data["status"]),
        error=None if err is None else OperationError(err[0], err[1], err[2]),
        scope=data["scope"],
    )


def describe_row(row: tuple[Any, ...]) -> str:
    """`journal row 12 (open create of instanceTemplate/x)`, from the columns that are plain."""
    id_, kind, name, op, status = row[0], row[5], row[6], row[7], row[12]
    return f"journal row {id_} ({status} {op} of {kind}/{name})"


def intent_from_row(row: tuple[Any, ...]) -> Intent:
    (id_, run_id, stack, owner, step_id, kind, name, op, request_id, payload, operation,
     principal, status, *_rest) = row  # fmt: skip
    data = json.loads(payload)
    return Intent(
        id=id_,
        run_id=run_id,
        stack=stack,
        owner=owner,
        step_id=step_id,
        key=ResourceKey(kind, name),
        op=Op(op),
        request_id=request_id,
        spec=spec_from_data(kind, data["spec"]) if data["spec"] else None,
        declared=spec_from_data(kind, data["declared"]) if data["declared"] else None,
        changes=tuple(change_from_data(c) for c in data["changes"]),
        operation=_op_from_data(json.loads(operation)) if operation else None,
        principal=principal,
        status=IntentStatus(status),
    )
