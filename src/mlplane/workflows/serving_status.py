"""`serve list`: each recorded revision, its share of its service's route (from the URL map the
team state records), and its replicas: the processes the local agent runs for its group, or
on Google Cloud what `listManagedInstances` shows the caller (when IAM lets them see it).
A revision the team state records but the local agent does not hold is listed as missing."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlplane.errors import MlplaneError
from mlplane.model.compute import URL_MAP, ResourceKey, UrlMap, model_prefix
from mlplane.providers.replica_view import AgentView
from mlplane.workflows.serving import frontend_url, recorded_revisions, revision_prefix
from mlplane.workflows.session import Session

MISSING_NOTE = (
    "missing at the local agent (`mlplane down` removed it): deploy the same revision again "
    "to recreate it"
)


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
    note: str = ""
    missing: bool = False  # recorded, but the local agent holds none of its group


def _weights(url_map: UrlMap | None, service: str) -> dict[str, int]:
    """backend-service name -> percent of `service`'s route."""
    if url_map is None:
        return {}
    for matcher in url_map.path_matchers:
        for rule in matcher.route_rules:
            if rule.prefix != model_prefix(service):
                continue
            if rule.service:
                return {rule.service.rsplit("/", 1)[-1]: 100}
            assert rule.route_action is not None
            wbs = rule.route_action.weighted_backend_services
            total = sum(w.weight for w in wbs) or 1
            return {
                w.backend_service.rsplit("/", 1)[-1]: round(100 * w.weight / total) for w in wbs
            }
    return {}


def _agent_view(session: Session) -> tuple[AgentView | None, str]:
    """What the local agent runs and holds (None on Google Cloud), and a note if it cannot say."""
    from mlplane.workflows import compose

    if session.provider != "local":
        return None, ""
    try:
        return session.platform.agent_view(compose.access_token(session.api)), ""
    except MlplaneError as exc:
        return None, str(exc).splitlines()[0][:160]


def _replicas(session: Session, group: str, agent: AgentView | None) -> tuple[list[Replica], str]:
    """The replicas of a managed group, and a note when they cannot be seen."""
    if agent is not None:
        views = [p for p in agent.processes if p.group == group]
        return [Replica(v.name, v.pid, v.port, v.health, v.restarts) for v in views], ""
    try:
        params = {"project": session.project_id, "zone": session.zone,
                  "instanceGroupManager": group}  # fmt: skip
        data = session.api.call("compute.instanceGroupManagers.listManagedInstances", params)
    except MlplaneError as exc:
        return [], str(exc).splitlines()[0][:160]
    out = []
    for item in data.get("managedInstances", ()):
        health = (item.get("instanceHealth") or [{}])[0].get("detailedHealthState", "UNKNOWN")
        out.append(Replica(str(item.get("name", "")), None, None, str(health), 0))
    return out, ""


def list_revisions(session: Session) -> list[RevisionStatus]:
    revisions = recorded_revisions(session)
    if not revisions:
        return []
    recorded = session.store.get(ResourceKey("urlMap", URL_MAP))
    url_map = recorded.spec if recorded is not None and isinstance(recorded.spec, UrlMap) else None
    try:
        base = frontend_url(session)
    except MlplaneError:
        base = ""
    agent, agent_note = _agent_view(session)
    out = []
    for r in revisions:
        group = f"{r.service}-{r.revision}-mig"
        missing = agent is not None and not agent.holds("instanceGroupManager", group)
        replicas: list[Replica] = []
        note = agent_note
        if not agent_note:
            replicas, note = _replicas(session, group, agent)
        out.append(
            RevisionStatus(
                r.service,
                r.revision,
                _weights(url_map, r.service).get(r.backend_service.name, 0),
                base + model_prefix(r.service),
                base + revision_prefix(r.service, r.revision),
                replicas,
                MISSING_NOTE if missing else note,
                missing,
            )
        )
    return out
