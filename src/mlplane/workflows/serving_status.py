"""`serve list`: each recorded revision, its share of its service's route (from the URL map the
team state records), and its replicas: the processes the local agent runs for its group, or
on Google Cloud what `listManagedInstances` shows the caller (when IAM lets them see it).
A revision the team state records but the local agent does not hold is listed as missing.

On the local provider this is a start-up path (decision 0017): the state store's rows and the
URL map's and forwarding rule's API bodies are read without the spec classes, and the agent is
asked once.
"""

from __future__ import annotations

from mlplane.errors import MlplaneError
from mlplane.model.value import Value

TYPE_CHECKING = False  # as typing's, without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any

    from mlplane.engine.state_index import RecordIndex
    from mlplane.providers.replica_view import AgentView

MISSING_NOTE = (
    "MISSING at the local agent (`mlplane down` removed it): deploy the same revision again to "
    "recreate it"
)


class Replica(Value):
    __slots__ = ("name", "pid", "port", "health", "restarts")
    name: str
    pid: int | None
    port: int | None
    health: str
    restarts: int

    def __init__(
        self, name: str, pid: int | None, port: int | None, health: str, restarts: int
    ) -> None:
        self._set(name=name, pid=pid, port=port, health=health, restarts=restarts)


class RevisionStatus(Value):
    __slots__ = (
        "service", "revision", "weight", "service_url", "revision_url", "replicas", "note",
        "missing",
    )  # fmt: skip
    service: str
    revision: str
    weight: int  # percent of the service route
    service_url: str
    revision_url: str
    replicas: tuple[Replica, ...]
    note: str
    missing: bool  # recorded, but the local agent holds none of its group

    def __init__(
        self,
        service: str,
        revision: str,
        weight: int,
        service_url: str,
        revision_url: str,
        replicas: Sequence[Replica] = (),
        note: str = "",
        missing: bool = False,
    ) -> None:
        self._set(
            service=service,
            revision=revision,
            weight=weight,
            service_url=service_url,
            revision_url=revision_url,
            replicas=tuple(replicas),
            note=note,
            missing=missing,
        )

    def to_json(self) -> dict[str, Any]:
        return {**self.fields(), "replicas": [r.fields() for r in self.replicas]}


class _Revision(Value):
    __slots__ = ("service", "revision", "created", "backend_service")
    service: str
    revision: str
    created: float
    backend_service: str

    def __init__(self, service: str, revision: str, created: float, backend: str) -> None:
        self._set(service=service, revision=revision, created=created, backend_service=backend)


def _revisions(records: list[RecordIndex]) -> list[_Revision]:
    """Recorded revisions (stacks `serving/SERVICE/REV` with a backend service), oldest first."""
    created: dict[str, float] = {}
    backend: dict[str, str] = {}
    for rec in records:
        parts = rec.stack.split("/")
        if len(parts) != 3 or parts[0] != "serving":
            continue
        created[rec.stack] = min(created.get(rec.stack, rec.updated_at), rec.updated_at)
        if rec.kind == "backendService":
            backend[rec.stack] = rec.name
    out = [
        _Revision(s.split("/")[1], s.split("/")[2], created[s], backend[s])
        for s in created
        if s in backend
    ]
    return sorted(out, key=lambda r: (r.created, r.revision))


def _replicas_on_gcp(project_file: str, groups: list[str]) -> dict[str, tuple[list[Replica], str]]:
    from mlplane.workflows.session import Session

    session = Session.open(project_file)
    out: dict[str, tuple[list[Replica], str]] = {}
    for group in groups:
        params = {"project": session.project_id, "zone": session.zone,
                  "instanceGroupManager": group}  # fmt: skip
        try:
            data = session.api.call("compute.instanceGroupManagers.listManagedInstances", params)
        except MlplaneError as exc:
            out[group] = ([], str(exc).splitlines()[0][:160])
            continue
        replicas = []
        for item in data.get("managedInstances", ()):
            health = (item.get("instanceHealth") or [{}])[0].get("detailedHealthState", "UNKNOWN")
            replicas.append(Replica(str(item.get("name", "")), None, None, str(health), 0))
        out[group] = (replicas, "")
    return out


def _frontend_on_gcp(project_file: str) -> str:
    from mlplane.workflows.serving import frontend_url
    from mlplane.workflows.session import Session

    try:
        return frontend_url(Session.open(project_file))
    except MlplaneError:
        return ""


def list_revisions(project_file: str | Path) -> list[RevisionStatus]:
    from mlplane.iam.compiled import project_and_provider
    from mlplane.model.routes import (
        model_prefix,
        port_of,
        revision_prefix,
        routes_of,
        service_shares,
    )
    from mlplane.workflows import compose
    from mlplane.workflows.status import recorded, state_path

    project_file = str(project_file)
    _, provider = project_and_provider(project_file)  # validates it (cached while unchanged)
    records = recorded(state_path(project_file, provider), ("urlMap", "forwardingRule"))
    revisions = _revisions(records)
    if not revisions:
        return []
    url_map = next((r.spec for r in records if r.kind == "urlMap"), "")
    rule = next((r.spec for r in records if r.kind == "forwardingRule"), "")
    routes = routes_of(url_map) if url_map else ()
    groups = [f"{r.service}-{r.revision}-mig" for r in revisions]
    seen: dict[str, tuple[list[Replica], str]] = {}
    missing: set[str] = set()
    if provider == "local":
        port = port_of(rule) if rule else ""
        base = compose.local_frontend_base(port) if port else ""
        try:
            view: AgentView | None = compose.local_processes(project_file)
        except MlplaneError as exc:
            view, note = None, str(exc).splitlines()[0][:160]
        else:
            note = "" if view is not None else "the local agent is not running (`mlplane up`)"
        for group in groups:
            mine = [
                Replica(v.name, v.pid, v.port, v.health, v.restarts)
                for v in (view.processes if view else ())
                if v.group == group
            ]
            if view is not None and not view.holds("instanceGroupManager", group):
                missing.add(group)
            seen[group] = (mine, MISSING_NOTE if group in missing else note)
    else:
        base = _frontend_on_gcp(project_file)
        seen = _replicas_on_gcp(project_file, groups)
    out = []
    for r, group in zip(revisions, groups, strict=True):
        replicas, note = seen.get(group, ([], ""))
        out.append(
            RevisionStatus(
                r.service,
                r.revision,
                service_shares(routes, r.service).get(r.backend_service, 0),
                base + model_prefix(r.service),
                base + revision_prefix(r.service, r.revision),
                replicas,
                note,
                group in missing,
            )
        )
    return out
