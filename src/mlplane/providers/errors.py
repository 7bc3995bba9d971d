"""Provider errors, already in mlplane's taxonomy (transient: retry after `delay`; permanent).

Providers map their SDK's exceptions and HTTP statuses with `error_for_status` at their boundary;
nothing above a provider sees an SDK exception.
"""

from __future__ import annotations

from mlplane.errors import MlplaneError, PermanentError, PermissionDenied, TransientError
from mlplane.model.kinds import ResourceKey


class NotFound(PermanentError):
    """404: the resource does not exist (a delete treats this as already done)."""

    def __init__(self, message: str, key: ResourceKey | None = None) -> None:
        self.key = key
        super().__init__(message)


class AlreadyExists(PermanentError):
    """409 alreadyExists: a resource with this name exists (create reconciles by observing)."""

    def __init__(self, message: str, key: ResourceKey | None = None) -> None:
        self.key = key
        super().__init__(message)


class InvalidRequest(PermanentError):
    """400-class error that retrying cannot fix (bad field, missing referenced resource...)."""

    def __init__(self, message: str, key: ResourceKey | None = None) -> None:
        self.key = key
        super().__init__(message)


class OperationFailed(PermanentError):
    """A long-running operation finished DONE with an error that retrying will not fix."""

    def __init__(self, message: str, key: ResourceKey | None = None, code: str = "") -> None:
        self.key = key
        self.code = code
        super().__init__(message)


class FingerprintConflict(TransientError):
    """412 conditionNotMet: the fingerprint sent with an update is stale. Re-read, re-apply the
    intent (not the stale object) and retry."""

    def __init__(self, message: str, key: ResourceKey | None = None, delay: float = 0.2) -> None:
        self.key = key
        super().__init__(message, delay)


class ResourceInUse(TransientError):
    """400 resourceInUseByAnotherResource on delete: `used_by` still refers to it.

    Transient because the referrer may be going away (its own delete or update is finishing);
    the engine retries a bounded number of times and then reports who holds the reference.
    """

    def __init__(
        self, message: str, key: ResourceKey | None = None, used_by: str = "", delay: float = 1.0
    ) -> None:
        self.key = key
        self.used_by = used_by
        super().__init__(message, delay)


class ProviderUnavailable(TransientError):
    """429/5xx or resourceNotReady: the provider cannot serve the call right now."""

    def __init__(self, message: str, key: ResourceKey | None = None, delay: float = 1.0) -> None:
        self.key = key
        super().__init__(message, delay)


class OperationTimeout(TransientError):
    """An operation was not DONE within the caller's timeout; it may still complete."""

    def __init__(self, message: str, key: ResourceKey | None = None, delay: float = 5.0) -> None:
        self.key = key
        super().__init__(message, delay)


_TRANSIENT_REASONS = frozenset(
    {"resourceNotReady", "rateLimitExceeded", "backendError", "RESOURCE_NOT_READY"}
)
_IN_USE_REASONS = frozenset(
    {"resourceInUseByAnotherResource", "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE"}
)


def error_for_status(
    status: int | None,
    message: str,
    *,
    reason: str = "",
    key: ResourceKey | None = None,
    used_by: str = "",
) -> MlplaneError:
    """Map an HTTP status (and Google error reason) to mlplane's taxonomy."""
    where = f"{key}: " if key else ""
    text = f"{where}{message}"
    if reason in _IN_USE_REASONS:
        if not used_by:  # Google names the referrers in the message: "... being used by 'X'"
            _, found, rest = message.partition("being used by ")
            used_by = rest.strip() if found else ""
        return ResourceInUse(text, key, used_by=used_by)
    if reason in _TRANSIENT_REASONS:
        return ProviderUnavailable(text, key, delay=2.0)
    if status == 404 or reason in ("notFound", "RESOURCE_NOT_FOUND"):
        return NotFound(text, key)
    if status == 409 or reason in ("alreadyExists", "ALREADY_EXISTS"):
        return AlreadyExists(text, key)
    if status == 412 or reason == "conditionNotMet":
        return FingerprintConflict(text, key)
    if status == 403:
        return PermissionDenied(f"{text} (denied by the provider)")
    if status == 429:
        return ProviderUnavailable(text, key, delay=5.0)
    if status is not None and status >= 500:
        return ProviderUnavailable(text, key, delay=2.0)
    if status is None:
        return OperationFailed(text, key, code=reason)
    return InvalidRequest(text, key)
