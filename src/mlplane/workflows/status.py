"""`mlplane status`: what the team state records (every resource, its lifecycle class, the stack
that owns it), and on the local provider the processes the agent runs for them. Recorded
resources that the agent no longer runs show as missing rather than failing the view.

On the start-up path (decision 0005; issue 7: within 3x `python -c pass`): the project file is
validated through the compiled policy's cache, the state store is read without decoding specs,
the agent is asked once, with a token at hand; no pydantic, dataclasses, pathlib or
http.client. The view types are `Value`s (model/value.py) for that reason.
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
    from mlplane.providers.replica_view import AgentView, ReplicaView

STATE_DB = "state.db"


class ResourceRow(Value):
    __slots__ = ("kind", "name", "lifecycle", "stack", "detail")
    kind: str
    name: str
    lifecycle: str
    stack: str
    detail: str

    def __init__(self, kind: str, name: str, lifecycle: str, stack: str, detail: str = "") -> None:
        self._set(kind=kind, name=name, lifecycle=lifecycle, stack=stack, detail=detail)

    def to_json(self) -> dict[str, object]:
        return self.fields()


class ProjectStatus(Value):
    __slots__ = ("summary", "resources", "processes", "notes")
    summary: str
    resources: tuple[ResourceRow, ...]
    processes: tuple[ReplicaView, ...]
    notes: tuple[str, ...]

    def __init__(
        self,
        summary: str,
        resources: Sequence[ResourceRow],
        processes: Sequence[ReplicaView],
        notes: Sequence[str],
    ) -> None:
        self._set(
            summary=summary,
            resources=tuple(resources),
            processes=tuple(processes),
            notes=tuple(notes),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "resources": [r.to_json() for r in self.resources],
            "processes": [p.to_json() for p in self.processes],
            "notes": list(self.notes),
        }


MISSING = "MISSING at the agent"


def _detail(record: RecordIndex, view: AgentView) -> str:
    if not view.holds(record.kind, record.name):
        return MISSING
    processes = view.processes
    if record.kind == "instanceGroupManager":
        mine = [p for p in processes if p.group == record.name]
        healthy = sum(1 for p in mine if p.health == "HEALTHY")
        return f"{healthy}/{len(mine)} healthy" if mine else "no replicas running"
    if record.kind == "instance":
        proc = next((p for p in processes if p.name == record.name), None)
        if proc is None:
            return "not running"
        return proc.status if proc.pid is None else f"{proc.status} pid {proc.pid}"
    return ""


def _missing_note(count: int) -> str:
    return (
        f"{count} recorded resource{'s are' if count > 1 else ' is'} missing at the local agent "
        "(`mlplane down` removed them, or they were not restored): applying again recreates "
        "them (`serve deploy` the same revision, `notebook create` the same name); "
        "`train reap` forgets training VMs"
    )


def state_path(project_file: str, provider: str) -> str:
    """The state database a view reads: this machine's (`local`), or a snapshot of the team
    state's newest generation, fetched without a lock (`gcp`)."""
    import os

    if provider == "gcp":
        from mlplane.workflows.team_state import snapshot_path

        return str(snapshot_path(project_file))
    return os.path.join(os.path.dirname(os.path.abspath(project_file)), ".mlplane", STATE_DB)


def recorded(state_db: str, with_specs: tuple[str, ...] = ()) -> list[RecordIndex]:
    """What the state store records (with the specs' JSON of the kinds in `with_specs`)."""
    from mlplane.engine.schema import SCHEMA_VERSION
    from mlplane.engine.state_index import read_index

    records = read_index(state_db, SCHEMA_VERSION, with_specs)
    if records is None:  # an older schema: the store migrates it (with a backup) first
        from pathlib import Path

        from mlplane.engine.state import StateStore

        store = StateStore(Path(state_db))
        try:
            records = store.index(with_specs)
        finally:
            store.close()
    return records


def project_status(project_file: str | Path) -> ProjectStatus:
    from mlplane.iam.compiled import project_and_provider
    from mlplane.model.lifecycles import lifecycle_of
    from mlplane.workflows import compose

    project_file = str(project_file)
    project, provider = project_and_provider(project_file)  # validates it (cached while unchanged)
    records = recorded(state_path(project_file, provider))
    view: AgentView | None = None
    notes: list[str] = []
    summary = f"project {project}, provider {provider}"
    if provider == "local":
        try:
            view = compose.local_processes(project_file)
        except MlplaneError as exc:
            notes.append(f"processes not shown: {exc}")
            summary += ", local agent running"
        else:
            if view is None:
                summary += ", local agent NOT running (`mlplane up`)"
            else:
                summary += ", local agent running"
    rows = [
        ResourceRow(r.kind, r.name, lifecycle_of(r.kind), r.stack, _detail(r, view) if view else "")
        for r in records
    ]
    missing = sum(1 for r in rows if r.detail == MISSING)
    if missing:
        notes.append(_missing_note(missing))
    if not records:
        notes.append("nothing recorded yet: `mlplane serve deploy ...` or `mlplane quickstart`")
    return ProjectStatus(summary, rows, view.processes if view else (), notes)
