"""mlplane's error taxonomy: every layer raises these; nothing above a provider sees SDK errors."""

from __future__ import annotations


class MlplaneError(Exception):
    """Base of every error mlplane reports to a user. The message is the whole story."""

    exit_code = 1


class ConfigError(MlplaneError):
    """Bad input in a file or argument: names the source and the field path."""

    exit_code = 2

    def __init__(self, source: str, location: str, message: str) -> None:
        self.source = source
        self.location = location
        self.message = message
        where = f"{source}: {location}" if location else source
        super().__init__(f"{where}: {message}")


class PermissionDenied(MlplaneError):
    """The acting principal lacks a permission; carries the IAM decision that says why."""

    exit_code = 3

    def __init__(self, message: str, decision: object | None = None) -> None:
        self.decision = decision
        super().__init__(message)


class TransientError(MlplaneError):
    """Worth retrying after `delay` seconds (rate limits, 5xx, fingerprint conflicts)."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        self.delay = delay
        super().__init__(message)


class PermanentError(MlplaneError):
    """Will not succeed by retrying; the message says what to change."""
