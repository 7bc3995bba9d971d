"""A secret's value and name: the value never prints, the name is checked before any file or
API call is made with it."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from mlplane.errors import ConfigError, PermanentError

# Secret Manager's secret id: letters, digits, '-' and '_', at most 255 characters.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,255}")
# Secret Manager's payload limit.
MAX_VALUE_BYTES = 65536
REDACTED = "<redacted>"


class SecretValue:
    """A secret's bytes. `repr`, `str` and f-strings show `<redacted>`; `reveal()` and `text()`
    are the only ways to the value, so it cannot reach a log line or a traceback by accident."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes | str) -> None:
        self._data = data.encode() if isinstance(data, str) else bytes(data)

    def reveal(self) -> bytes:
        return self._data

    def text(self, encoding: str = "utf-8") -> str:
        try:
            return self._data.decode(encoding)
        except UnicodeDecodeError:
            raise ValueError(f"the secret value is not {encoding} text") from None

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"SecretValue({REDACTED})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        return hmac.compare_digest(self._data, other._data)

    __hash__ = None  # type: ignore[assignment]  # equality is by value; keep it out of sets

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a SecretValue is not pickled; pass reveal() explicitly if you must")


def check_name(name: object, argument: str = "name") -> str:
    """Return `name` if it is a valid secret id, else raise ConfigError naming `argument`."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise ConfigError(
            argument,
            "",
            f"{shown} is not a valid secret name: 1 to 255 letters, digits, '-' or '_' "
            "(no path separators or dots)",
        )
    return name


def check_value(value: SecretValue, argument: str = "value") -> SecretValue:
    if not isinstance(value, SecretValue):
        raise ConfigError(argument, "", "pass the value as a SecretValue")
    if len(value) == 0:
        raise ConfigError(argument, "", "the value is empty")
    if len(value) > MAX_VALUE_BYTES:
        raise ConfigError(
            argument, "", f"the value has {len(value)} bytes; the limit is {MAX_VALUE_BYTES}"
        )
    return value


def check_version(version: int | str) -> int | str:
    """`latest` or a version number >= 1."""
    if version == "latest":
        return version
    try:
        number = int(version)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or (isinstance(version, str) and not version.isdigit()):
        raise ConfigError("version", "", f"{version!r} is not 'latest' or a number >= 1")
    return number


class SecretNotFound(PermanentError):
    """No such secret, or no such (enabled) version of it."""

    exit_code = 5

    def __init__(self, name: str, version: int | str | None = None) -> None:
        self.name = name
        self.version = version
        what = f"secret '{name}'" if version is None else f"version {version} of secret '{name}'"
        super().__init__(f"{what} not found")


@dataclass(frozen=True)
class SecretVersion:
    """A version's metadata (never its value)."""

    name: str
    version: int
    state: str  # enabled | disabled | destroyed
    created: str  # RFC 3339, UTC


@dataclass(frozen=True)
class SecretInfo:
    name: str
    versions: tuple[SecretVersion, ...]

    @property
    def latest(self) -> int | None:
        enabled = [v.version for v in self.versions if v.state == "enabled"]
        return max(enabled) if enabled else None
