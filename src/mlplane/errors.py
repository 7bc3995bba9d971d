"""mlplane's error taxonomy: every layer raises these; nothing above a provider sees SDK errors."""

from __future__ import annotations


class MlplaneError(Exception):
    """Base of every error mlplane reports to a user. The message is the whole story."""

    exit_code = 1


_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
    0x85: "\\x85",
}


def one_line(text: str) -> str:
    """`text` as one line: line breaks and other control characters escaped (`\\n`)."""
    return text.translate(_CONTROLS)


class ConfigError(MlplaneError):
    """Bad input in a file or argument: names the source and the field path. Always one line:
    input echoed in the message cannot break it (control characters are escaped)."""

    exit_code = 2

    def __init__(self, source: str, location: str, message: str) -> None:
        source, location, message = one_line(source), one_line(location), one_line(message)
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
