"""Executing one step (or rolling one journaled intent forward) against its provider.

Each mutation is journaled before it is sent, sent with the intent's requestId, waited for with
the one waiting helper, and written back to the state store in the same transaction that closes
the intent. Transient errors are retried with backoff under separate budgets: 412 fingerprint
conflicts (re-read, re-apply the *intent*), resourceInUse on delete (the referrer may be going
away), everything else (503, timeouts). An exhausted budget becomes a PermanentError that says
what happened.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mlplane.errors import PermanentError, TransientError
from mlplane.model.compute import Change, ResourceKey, ResourceSpec
from mlplane.providers.base import (
    DEFAULT_POLL,
    SYSTEM_CLOCK,
    Clock,
    Operation,
    PollPolicy,
    ResourceProvider,
    wait_for_operation,
)
from mlplane.providers.errors import (
    AlreadyExists,
    FingerprintConflict,
    NotFound,
    OperationTimeout,
    ProviderUnavailable,
    ResourceInUse,
)
from mlplane.providers.registry import ProviderSet

from .journal import Intent, IntentStatus, Journal
from .state import StaleWrite, StateStore, StateWrite
from .steps import Op, Step

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8  # 503s, rate limits, operation timeouts
    conflict_attempts: int = 25  # 412 fingerprint conflicts
    in_use_attempts: int = 6  # resourceInUseByAnotherResource on delete
    base_delay: float = 0.25
    max_delay: float = 30.0
    operation_timeout: float = 1800.0


def update_target(
    key: ResourceKey,
    declared: ResourceSpec | None,
    changes: tuple[Change, ...],
    live: ResourceSpec,
) -> ResourceSpec:
    """What an update sends: the declared spec merged into the live object (or the live object
    itself), then the changes (the intent, re-applied to whatever is live now)."""
    base = declared.merge_live(live) if declared else live
    try:
        return base.with_changes(changes)
    except (ValueError, TypeError) as exc:
        raise PermanentError(f"{key}: cannot re-apply the change: {exc}") from exc


class _Attempt:
    """Where a mutation stands across retries: its latest operation and request generation."""

    def __init__(self, intent: Intent) -> None:
        self.intent = intent
        self.op: Operation | None = intent.operation
        self.generation = 0

    def request_id(self) -> str:
        base = self.intent.request_id
        return (
            base if self.generation == 0 else str(uuid.uuid5(uuid.UUID(base), str(self.generation)))
        )


class StepRunner:
    def __init__(
        self,
        *,
        store: StateStore,
        journal: Journal,
        providers: ProviderSet,
        run_id: str,
        principal: str,
        clock: Clock = SYSTEM_CLOCK,
        retry: RetryPolicy = RetryPolicy(),
        poll: PollPolicy = DEFAULT_POLL,
    ) -> None:
        self.store = store
        self.journal = journal
        self.providers = providers
        self.run_id = run_id
        self.principal = principal
        self.clock = clock
        self.retry = retry
        self.poll = poll

    # -- entry points --------------------------------------------------------------------------

    def run(self, step: Step) -> None:
        """Execute one planned step; raises MlplaneError (permanent) when it cannot."""
        if step.op in (Op.RECORD, Op.FORGET):
            spec = step.spec if step.op is Op.RECORD else None
            self._write_back(None, StateWrite(step.key, step.stack, spec, step.base_version))
            return
        intent = self.journal.begin(
            run_id=self.run_id,
            stack=step.scope,
            owner=step.stack,
            step_id=step.id,
            key=step.key,
            op=step.op,
            request_id=str(uuid.uuid4()),
            spec=step.previous if step.op is Op.DELETE else step.spec,
            declared=step.declared,
            changes=step.changes,
            principal=self.principal,
        )
        self.resume(intent, step.base_version)

    def resume(
        self,
        intent: Intent,
        base_version: int | None,
        status: IntentStatus = IntentStatus.DONE,
    ) -> None:
        """Carry an intent (new, or left open by a dead process) through to its recorded result."""
        actions: dict[Op, Callable[[_Attempt], ResourceSpec | None]] = {
            Op.CREATE: self._create,
            Op.UPDATE: self._update,
            Op.DELETE: self._delete,
        }
        attempt = _Attempt(intent)
        try:
            after = self._retrying(intent.key, lambda: actions[intent.op](attempt))
        except Exception as exc:
            self.journal.fail(intent, exc)
            raise
        write = StateWrite(intent.key, intent.owner, after, base_version)
        self._write_back(attempt.intent, write, status)

    # -- mutations -----------------------------------------------------------------------------

    def _provider(self, key: ResourceKey) -> ResourceProvider[Any]:
        return self.providers.for_kind(key.kind)

    def _send(self, a: _Attempt, verbose: str, call: Callable[[str], Operation]) -> None:
        """Issue the call (unless an operation is in flight), journal it, wait for it."""
        provider = self._provider(a.intent.key)
        if a.op is not None and a.op.done and a.op.error is not None:
            a.op, a.generation = None, a.generation + 1  # journaled as failed: new request
        if a.op is None:
            a.op = call(a.request_id())
            self.journal.called(a.intent)
            a.intent = self.journal.operation(a.intent, a.op)
        try:
            a.op = wait_for_operation(
                a.op,
                verbose,
                self.retry.operation_timeout,
                poller=provider,
                clock=self.clock,
                policy=self.poll,
            )
        except OperationTimeout:
            raise  # still in flight: the next attempt waits for the same operation
        except Exception:
            a.op, a.generation = None, a.generation + 1  # finished with an error: new request
            raise
        self.journal.finished(a.intent)

    def _create(self, a: _Attempt) -> ResourceSpec:
        key, spec, provider = a.intent.key, a.intent.spec, self._provider(a.intent.key)
        assert spec is not None
        try:
            self._send(a, f"create {key}", lambda rid: provider.create(spec, request_id=rid))
        except AlreadyExists:
            try:
                live = provider.get(key)
            except NotFound:
                raise ProviderUnavailable(f"{key}: being created, not readable yet") from None
            if live.spec != spec:
                raise PermanentError(
                    f"{key} already exists at the provider with a different spec "
                    f"({', '.join(spec.changed_fields(live.spec))} differ); delete or rename it"
                ) from None
        return spec

    def _update(self, a: _Attempt) -> ResourceSpec:
        # Serialize writers of this resource inside mlplane: no livelock on the URL map's
        # fingerprint, and no lost update on kinds that have none (the OpenAPI config).
        with self.store.lock_resource(a.intent.key, self.retry.operation_timeout):
            return self._read_modify_write(a)

    def _read_modify_write(self, a: _Attempt) -> ResourceSpec:
        key, provider = a.intent.key, self._provider(a.intent.key)
        if a.op is not None and not a.op.done:  # recovering: let the in-flight update land
            try:
                wait_for_operation(
                    a.op, f"update {key}", self.retry.operation_timeout, poller=provider,
                    clock=self.clock, policy=self.poll,
                )  # fmt: skip
            except TransientError:
                raise
            except Exception:  # a failed earlier update is simply re-applied below
                pass
            a.op, a.generation = None, a.generation + 1  # that request is spent
        try:
            live = provider.get(key)
        except NotFound:
            raise PermanentError(f"{key} no longer exists at the provider; re-plan") from None
        target = update_target(key, a.intent.declared, a.intent.changes, live.spec)
        if target == live.spec:
            return target  # already applied (by an earlier attempt or run)
        fingerprint = live.fingerprint

        def call(rid: str) -> Operation:
            return provider.update(target, fingerprint=fingerprint, request_id=rid)

        try:
            self._send(a, f"update {key}", call)
        except FingerprintConflict:
            a.op, a.generation = None, a.generation + 1
            raise
        return target

    def _delete(self, a: _Attempt) -> None:
        key, provider = a.intent.key, self._provider(a.intent.key)
        try:
            self._send(a, f"delete {key}", lambda rid: provider.delete(key, request_id=rid))
        except NotFound:
            pass  # already gone: the goal of a delete
        except ResourceInUse:
            a.op, a.generation = None, a.generation + 1
            raise
        return None

    # -- retries and write-back ----------------------------------------------------------------

    def _retrying(self, key: ResourceKey, attempt: Callable[[], T]) -> T:
        counts = {"conflict": 0, "in_use": 0, "other": 0}
        while True:
            try:
                return attempt()
            except TransientError as exc:
                if isinstance(exc, FingerprintConflict):
                    bucket, limit = "conflict", self.retry.conflict_attempts
                elif isinstance(exc, ResourceInUse):
                    bucket, limit = "in_use", self.retry.in_use_attempts
                else:
                    bucket, limit = "other", self.retry.attempts
                counts[bucket] += 1
                if counts[bucket] > limit:
                    if isinstance(exc, ResourceInUse):
                        by = exc.used_by or "another resource"
                        msg = f"cannot delete {key}: still in use by {by} after {limit} retries"
                    else:
                        msg = f"{key}: gave up after {limit} retries: {exc}"
                    raise PermanentError(msg) from exc
                self.clock.sleep(self._backoff(exc.delay, counts[bucket]))

    def _backoff(self, hint: float, n: int) -> float:
        delay: float = min(self.retry.max_delay, max(hint, self.retry.base_delay) * 2.0 ** (n - 1))
        return delay * (0.5 + random.random() / 2)  # jitter: concurrent writers desynchronize

    def _write_back(
        self,
        intent: Intent | None,
        write: StateWrite,
        status: IntentStatus = IntentStatus.DONE,
    ) -> None:
        """Record the result (and close the intent) guarded by the row version; on a stale
        version, re-read the row and the live resource, and record what is really there."""
        for _ in range(20):
            try:
                if intent is None:
                    self.store.write(write)
                else:
                    self.journal.complete(intent, write, status)
                return
            except StaleWrite:
                rec = self.store.get(write.key)
                version = rec.version if rec else None
                owner = rec.stack if rec else write.stack
                spec: ResourceSpec | None = None
                if write.spec is not None:
                    try:
                        spec = self._provider(write.key).get(write.key).spec
                    except NotFound:
                        spec = None
                write = StateWrite(write.key, owner, spec, version)
        raise PermanentError(f"{write.key}: the state row keeps changing; giving up recording it")
