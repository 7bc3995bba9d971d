"""`serve list`: each recorded revision with its replicas (from the agent) and its share of its
service's route (from the live URL map)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlplane.model.compute import URL_MAP, ResourceKey, model_prefix
from mlplane.providers.local.control import find_agent
from mlplane.workflows.serving import recorded_revisions, revision_prefix
from mlplane.workflows.session import Session


@dataclass(frozen=True)
class Replica:
    name: str
    pid: int | None
    port: int | None
    health: str
    restarts: int


@dataclass(frozen=True)
class RevisionStatus:
    service: str
    revision: str
    weight: int  # percent of the service route
    service_url: str
    revision_url: str
    replicas: list[Replica] = field(default_factory=list)


def _weights(url_map: dict[str, Any], service: str) -> dict[str, int]:
    """backend-service name -> percent of `service`'s route in a URL map's API JSON."""
    for matcher in url_map.get("pathMatchers", ()):
        for rule in matcher.get("routeRules", ()):
            prefixes = [m.get("prefixMatch") for m in rule.get("matchRules", ())]
            if model_prefix(service) not in prefixes:
                continue
            if rule.get("service"):
                return {rule["service"].rsplit("/", 1)[-1]: 100}
            wbs = rule.get("routeAction", {}).get("weightedBackendServices", ())
            total = sum(int(w.get("weight", 0)) for w in wbs) or 1
            return {
                w["backendService"].rsplit("/", 1)[-1]: round(100 * int(w.get("weight", 0)) / total)
                for w in wbs
            }
    return {}


def list_revisions(session: Session) -> list[RevisionStatus]:
    revisions = recorded_revisions(session)
    handle = find_agent(session.project_file)
    if handle is None or not revisions:
        return [
            RevisionStatus(r.service, r.revision, 0, "", "(agent not running)") for r in revisions
        ]
    from mlplane.providers.local.client import frontend_url

    client = handle.client()
    base = frontend_url(client)
    url_map = client.get(ResourceKey("urlMap", URL_MAP)).spec
    out = []
    for r in revisions:
        weights = _weights(url_map, r.service)
        mig = f"{r.service}-{r.revision}-mig"
        replicas = [
            Replica(v.name, v.pid, v.port, v.health, v.restarts)
            for v in client.managed_instances(mig)
        ]
        out.append(
            RevisionStatus(
                r.service,
                r.revision,
                weights.get(r.backend_service.name, 0),
                base + model_prefix(r.service),
                base + revision_prefix(r.service, r.revision),
                replicas,
            )
        )
    return out
