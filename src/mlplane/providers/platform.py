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
from typing import TYPE_CHECKING, Any, Protocol

from mlplane.apis.endpoints import Endpoints
from mlplane.providers.replica_view import ReplicaView

if TYPE_CHECKING:
    from mlplane.model.compute import ForwardingRule, ResourceKey


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
    # How long a client waits, at most, between two polls of a long-running operation or a
    # build: Google's quotas want seconds; the local agent answers on loopback in a millisecond.
    max_poll_interval: float

    def endpoints(self) -> Endpoints:
        """Where Google's APIs are served for this project (raises if unreachable)."""

    def frontend_base(self, rule: ForwardingRule | None) -> str:
        """The base URL users reach the load balancer at (`http://HOST[:PORT]`)."""

    def processes(self, token: str) -> list[ReplicaView]:
        """The processes running workloads on this machine (empty on Google Cloud)."""
