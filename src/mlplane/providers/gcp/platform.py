"""The `gcp` platform: Google's own endpoints; users reach the load balancer at the forwarding
rule's address (or the Endpoints service's name, which resolves to it)."""

from __future__ import annotations

from mlplane.apis.endpoints import Endpoints
from mlplane.model.compute import ForwardingRule
from mlplane.providers.errors import ProviderUnavailable
from mlplane.providers.replica_view import ReplicaView


class GcpPlatform:
    name = "gcp"
    max_poll_interval = 2.0

    def __init__(self, endpoints_service: str | None = None) -> None:
        self.endpoints_service = endpoints_service

    def endpoints(self) -> Endpoints:
        return Endpoints.google()

    def frontend_base(self, rule: ForwardingRule | None) -> str:
        if rule is not None and rule.ip_address and "/" not in rule.ip_address:
            port = rule.port_range.partition("-")[0]
            return f"http://{rule.ip_address}" + ("" if port == "80" else f":{port}")
        if self.endpoints_service:
            return f"http://{self.endpoints_service}"
        raise ProviderUnavailable("the load balancer's address is not known yet")

    def processes(self, token: str) -> list[ReplicaView]:
        return []
