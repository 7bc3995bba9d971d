"""`mlplane status`: what the team state records (every resource, its lifecycle class, the stack
that owns it), and on the local provider the processes the agent runs for them. Recorded
resources that the agent no longer runs show as missing rather than failing the view."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlplane.errors import MlplaneError
from mlplane.model.compute import InstanceGroupManager, ResourceSpec
from mlplane.providers.platform import ReplicaView
from mlplane.workflows.session import Session


@dataclass(frozen=True)
class ResourceRow:
    kind: str
    name: str
    lifecycle: str
    stack: str
    detail: str = ""


@dataclass(frozen=True)
class ProjectStatus:
    summary: str
    resources: list[ResourceRow] = field(default_factory=list)
    processes: list[ReplicaView] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _detail(spec: ResourceSpec, processes: list[ReplicaView], local: bool) -> str:
    if not local:
        return ""
    if isinstance(spec, InstanceGroupManager):
        mine = [p for p in processes if p.group == spec.name]
        healthy = sum(1 for p in mine if p.health == "HEALTHY")
        return f"{healthy}/{len(mine)} healthy" if mine else "no replicas running"
    if spec.KIND == "instance":
        proc = next((p for p in processes if p.name == spec.name), None)
        return f"{proc.status} pid {proc.pid}" if proc else "not running"
    return ""


def project_status(session: Session) -> ProjectStatus:
    from mlplane.workflows import compose

    records = sorted(session.store.load().values(), key=lambda r: (r.key.kind, r.key.name))
    local = session.provider == "local"
    processes: list[ReplicaView] = []
    notes: list[str] = []
    summary = f"project {session.project_id}, provider {session.provider}"
    if local:
        if compose.agent_running(session.project_file):
            try:
                processes = session.platform.processes(compose.access_token(session.api))
            except MlplaneError as exc:
                notes.append(f"processes not shown: {exc}")
            summary += ", local agent running"
        else:
            summary += ", local agent NOT running (`mlplane up`)"
    rows = [
        ResourceRow(
            r.key.kind,
            r.key.name,
            str(type(r.spec).LIFECYCLE),
            r.stack,
            _detail(r.spec, processes, local and bool(processes or not records)),
        )
        for r in records
    ]
    if not records:
        notes.append("nothing recorded yet: `mlplane serve deploy ...` or `mlplane quickstart`")
    return ProjectStatus(summary, rows, processes, notes)
