"""A real local project for workflow tests: a project file, trained artifacts, a running agent.
Everything started here is stopped by PID at teardown, and the teardown checks nothing leaked."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlplane.examples.sentiment.train import train
from mlplane.workflows.project_file import write_project_file
from mlplane.workflows.session import Session
from tests.harness import Team, with_admin

ALICE = "alice@acme.com"


@dataclass
class LocalProject:
    root: Path
    team: Team
    session: Session  # acting as alice, signed in
    v1: Path
    v2: Path

    def fresh_session(self, who: str = ALICE) -> Session:
        return self.team.session(who)


def alive(pid: int) -> bool:
    """Running (a zombie is dead: orphans here may wait long for a PID 1 that never reaps)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def supervised_pids(root: Path) -> list[int]:
    from mlplane.providers.local.agent.processes import recorded_children

    return [p.pid for p in recorded_children(root / ".mlplane" / "agent" / "children.json")]


@pytest.fixture(scope="module")
def local_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProject]:
    root = tmp_path_factory.mktemp("proj")
    project_file = root / "mlplane.toml"
    members = ["user:alice@acme.com", "user:bob@acme.com"]
    write_project_file(project_file, project_id="acme-ml", members=members)
    project_file.write_text(with_admin(project_file.read_text()))
    quiet = lambda *_: None  # noqa: E731
    v1 = train(root / "artifacts" / "v1", seed=7, progress=quiet)
    v2 = train(root / "artifacts" / "v2", seed=11, progress=quiet)
    team = Team(project_file, root / "config")
    handle = team.up()
    try:
        with team.acting(ALICE):  # what the data SDK (artifact checks) finds in-process
            yield LocalProject(root, team, team.session(ALICE), Path(v1), Path(v2))
    finally:
        pids = supervised_pids(root)
        team.down()
        assert not alive(handle.info.pid), "agent still alive after stop"
        leaked = [p for p in pids if alive(p)]
        assert not leaked, f"processes left behind: {leaked}"
