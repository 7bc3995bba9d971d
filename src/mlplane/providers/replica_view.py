"""`ReplicaView`: one process the local agent runs, as `mlplane status` and the agent's
`/_mlplane/processes` show it.

A plain value class, not a dataclass: it is on `mlplane status`'s start-up path, where importing
dataclasses (and inspect, ast) would cost more than the command's own work (decision 0005).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

_FIELDS = (
    "group",
    "name",
    "pid",
    "port",
    "metadata_port",
    "status",
    "health",
    "service_account",
    "restarts",
)


class ReplicaView:
    """A managed group's replica, or a standalone instance (group empty), or a build (group
    `builds`). Immutable; equal by value."""

    __slots__ = _FIELDS
    group: str
    name: str
    pid: int | None
    port: int | None
    metadata_port: int | None
    status: str
    health: str
    service_account: str
    restarts: int

    def __init__(
        self,
        group: str,
        name: str,
        pid: int | None,
        port: int | None,
        metadata_port: int | None,
        status: str,
        health: str,
        service_account: str,
        restarts: int = 0,
    ) -> None:
        values = (group, name, pid, port, metadata_port, status, health, service_account, restarts)
        for field, value in zip(_FIELDS, values, strict=True):
            object.__setattr__(self, field, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ReplicaView is immutable (cannot set '{name}')")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, f) for f in _FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReplicaView) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in _FIELDS)
        return f"ReplicaView({inner})"

    def to_json(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in _FIELDS}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ReplicaView:
        return cls(**{k: d[k] for k in d if k in _FIELDS})
