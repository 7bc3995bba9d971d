"""The provider contract: one small base class per resource kind, capability mixins, and the one
helper that waits for long-running operations.

Shaped by Compute Engine semantics: every mutation returns an `Operation` quickly (PENDING,
RUNNING or DONE, possibly DONE *with* an error); names are the identity; fingerprinted kinds
reject an update carrying a stale fingerprint with `FingerprintConflict` (412); deleting a
referenced resource fails with `ResourceInUse`; `requestId` makes a retried mutation idempotent.

A provider (`local`, `gcp`, a test fake) implements, per kind, a subclass of `ResourceProvider`
in its own module and registers it with one line in `providers/registry.py`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Generic, Protocol, TypeVar

from mlplane.errors import MlplaneError
from mlplane.model.compute_base import ResourceKey, ResourceSpec, Verb
from mlplane.providers.errors import OperationTimeout, error_for_status

SpecT = TypeVar("SpecT", bound=ResourceSpec)


class OperationStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"


@dataclass(frozen=True)
class OperationError:
    """`Operation.error.errors[0]` plus `httpErrorStatusCode` of a Compute operation."""

    code: str
    message: str
    http_status: int | None = None


@dataclass(frozen=True)
class Operation:
    """A provider operation. `scope` is `global`, `zones/Z` or `regions/R` (which *Operations
    collection polls it). A DONE operation can carry an error: always check `error`."""

    name: str
    target: ResourceKey
    verb: Verb
    status: OperationStatus = OperationStatus.PENDING
    error: OperationError | None = None
    scope: str = "global"
    progress: int = 0

    @property
    def done(self) -> bool:
        return self.status is OperationStatus.DONE


@dataclass(frozen=True)
class Observed(Generic[SpecT]):
    """What `get` returns: the resource as mlplane's spec type, plus provider metadata."""

    spec: SpecT
    fingerprint: str | None = None
    status: str = "READY"
    self_link: str = ""


@dataclass(frozen=True)
class ProviderContext:
    """What a provider instance is built with (registry factories take exactly this).

    `apis` is the client of Google's APIs the provider calls through (providers/gcp's
    `GoogleApis`, pointed at Google or at the local agent, with the caller's credentials);
    typed loosely here because this module is below the providers that define it."""

    project: str
    zone: str | None = None
    region: str | None = None
    workdir: Path | None = None
    apis: object | None = None


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


class OperationPoller(Protocol):
    def get_operation(self, op: Operation) -> Operation: ...


class ResourceProvider(ABC, Generic[SpecT]):
    """Base contract for one resource kind. Every method returns quickly.

    - `create`/`update`/`delete` start the mutation and return its `Operation`; they raise
      `AlreadyExists`, `NotFound`, `FingerprintConflict`, `ResourceInUse`, `InvalidRequest`,
      `ProviderUnavailable` (errors from `mlplane.providers.errors`) for synchronous failures.
      A repeated call with the same `request_id` must not repeat the mutation (GCP `requestId`).
    - `update` of a FINGERPRINTED kind must be given the fingerprint from the latest `get`.
    - `get` raises `NotFound`; `list` returns every resource of the kind in the project.
    - `get_operation` refreshes an operation; use `wait_for_operation` to wait for one.
    """

    KIND: ClassVar[str]

    @abstractmethod
    def create(self, spec: SpecT, *, request_id: str) -> Operation: ...

    @abstractmethod
    def get(self, key: ResourceKey) -> Observed[SpecT]: ...

    @abstractmethod
    def update(self, spec: SpecT, *, fingerprint: str | None, request_id: str) -> Operation: ...

    @abstractmethod
    def delete(self, key: ResourceKey, *, request_id: str) -> Operation: ...

    @abstractmethod
    def list(self) -> Sequence[Observed[SpecT]]: ...

    @abstractmethod
    def get_operation(self, op: Operation) -> Operation: ...


class SupportsOperationWait(ABC):
    """Capability: a server-side blocking wait (Compute `*Operations.wait`, <= ~2 min a call,
    may return before DONE). `wait_for_operation` uses it instead of polling when present."""

    @abstractmethod
    def wait_operation(self, op: Operation, timeout: float) -> Operation: ...


@dataclass(frozen=True)
class ManagedInstance:
    """One VM (or local process) of a MIG, as `listManagedInstances` reports it."""

    name: str
    status: str
    health_state: str | None = None
    current_action: str = "NONE"


class SupportsManagedInstances(ABC):
    """Capability: list a MIG's instances with their health (for status views, readiness)."""

    @abstractmethod
    def list_managed_instances(self, key: ResourceKey) -> Sequence[ManagedInstance]: ...


CAPABILITIES: dict[str, type] = {
    "operation-wait": SupportsOperationWait,
    "managed-instances": SupportsManagedInstances,
}


def capabilities(provider: object) -> frozenset[str]:
    """Names of the capability mixins a provider implements (cf. dstack `features.py`)."""
    return frozenset(name for name, mixin in CAPABILITIES.items() if isinstance(provider, mixin))


@dataclass(frozen=True)
class PollPolicy:
    """Client-side polling backoff; `server_wait` caps one server-side wait call."""

    initial: float = 0.05
    factor: float = 1.5
    maximum: float = 2.0
    server_wait: float = 60.0


DEFAULT_POLL = PollPolicy()


def operation_error(op: Operation, verbose_name: str) -> MlplaneError:
    """The mlplane error for an operation that finished DONE with an error."""
    assert op.error is not None
    err = op.error
    return error_for_status(
        err.http_status,
        f"{verbose_name} failed: {err.code}: {err.message}",
        reason=err.code,
        key=op.target,
    )


def wait_for_operation(
    op: Operation,
    verbose_name: str,
    timeout: float,
    *,
    poller: OperationPoller,
    clock: Clock = SYSTEM_CLOCK,
    policy: PollPolicy = DEFAULT_POLL,
) -> Operation:
    """Wait until `op` is DONE; return it, or raise its error mapped into mlplane's taxonomy.

    Uses the provider's server-side wait when it has one, else polls `get_operation` with
    exponential backoff. Raises `OperationTimeout` (transient: the operation may still finish)
    after `timeout` seconds. (Cf. dstack `wait_for_extended_operation`.)
    """
    deadline = clock.monotonic() + timeout
    delay = policy.initial
    while not op.done:
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            raise OperationTimeout(
                f"{verbose_name}: operation {op.name} not done after {timeout:g}s ({op.status})",
                op.target,
            )
        if isinstance(poller, SupportsOperationWait):
            op = poller.wait_operation(op, min(remaining, policy.server_wait))
        else:
            clock.sleep(min(delay, remaining))
            delay = min(delay * policy.factor, policy.maximum)
            op = poller.get_operation(op)
    if op.error is not None:
        raise operation_error(op, verbose_name)
    return op
