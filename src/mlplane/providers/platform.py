"""The seam between workflows and a provider: what differs between running on this machine
(`local`: the agent) and on Google Cloud (`gcp`), and the client interface both share.

Workflows talk to Google's APIs through `ApiClient` (providers/gcp's client, pointed at Google
or at the agent) and ask the `Platform` only what is not an API call: where the APIs are, how
users reach the load balancer, and (locally) which processes run what. The one composition root
(`mlplane.workflows.compose`) picks the implementation; nothing else above providers imports
`providers.local` or `providers.gcp`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from mlplane.apis.endpoints import Endpoints
from mlplane.model.compute import ForwardingRule, ResourceKey


@dataclass(frozen=True)
class ReplicaView:
    """One process the local agent runs: a managed group's replica, or a standalone instance
    (group empty), or a build (group `builds`)."""

    group: str
    name: str
    pid: int | None
    port: int | None
    metadata_port: int | None
    status: str
    health: str
    service_account: str
    restarts: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ReplicaView:
        return cls(**{k: d[k] for k in d if k in cls.__dataclass_fields__})


class ApiClient(Protocol):
    """A client of Google's REST APIs (providers/gcp's `GoogleApis` is the one)."""

    def call(
        self,
        method_id: str,
        params: Mapping[str, Any],
        body: Any = None,
        *,
        key: ResourceKey | None = None,
        timeout: float | None = None,
    ) -> Any: ...


class Platform(Protocol):
    name: str

    def endpoints(self) -> Endpoints:
        """Where Google's APIs are served for this project (raises if unreachable)."""

    def frontend_base(self, rule: ForwardingRule | None) -> str:
        """The base URL users reach the load balancer at (`http://HOST[:PORT]`)."""

    def processes(self, token: str) -> list[ReplicaView]:
        """The processes running workloads on this machine (empty on Google Cloud)."""
