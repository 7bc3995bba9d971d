"""`ReplicaView`: one process the local agent runs, as `mlplane status` and the agent's
`/_mlplane/processes` show it.

A `Value` (model/value.py), not a dataclass: it is on `mlplane status`'s start-up path, where
importing dataclasses (and inspect, ast) would cost more than the command's own work (decision
0005).
"""

from __future__ import annotations

from mlplane.model.value import Value

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


class ReplicaView(Value):
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
        self._set(
            group=group,
            name=name,
            pid=pid,
            port=port,
            metadata_port=metadata_port,
            status=status,
            health=health,
            service_account=service_account,
            restarts=restarts,
        )

    def to_json(self) -> dict[str, Any]:
        return self.fields()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ReplicaView:
        return cls(**{k: d[k] for k in d if k in _FIELDS})


class AgentView(Value):
    """What the local agent runs (`/_mlplane/processes`): its processes, and the (kind, name) of
    every resource it holds (None from an agent too old to say); `mlplane status` shows
    recorded resources absent here as missing."""

    __slots__ = ("processes", "resources")
    processes: tuple[ReplicaView, ...]
    resources: frozenset[tuple[str, str]] | None

    def __init__(
        self, processes: tuple[ReplicaView, ...], resources: frozenset[tuple[str, str]] | None
    ) -> None:
        self._set(processes=processes, resources=resources)

    def holds(self, kind: str, name: str) -> bool:
        """Whether the agent holds the resource (True when it cannot say)."""
        return self.resources is None or (kind, name) in self.resources

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AgentView:
        processes = tuple(ReplicaView.from_json(p) for p in d.get("processes", ()))
        held = d.get("resources")
        resources = None if held is None else frozenset((str(k), str(n)) for k, n in held)
        return cls(processes, resources)
