"""The team state, as commands see it (`provider = "gcp"`, decision 1500): where it is, who
holds its lock, breaking a lock, and the local files `mlplane status` and `mlplane state check`
read."""

from __future__ import annotations

from pathlib import Path

from mlplane.engine.team_records import LockInfo, SyncRecord, TeamStateInfo
from mlplane.engine.team_state import TeamState
from mlplane.errors import ConfigError
from mlplane.workflows.session import TEAM_DIR, Session


def team_of(session: Session) -> TeamState:
    team = session.team
    if team is None:
        raise ConfigError(
            str(session.project_file),
            "project.provider",
            "'local' keeps the state on this machine (.mlplane/state.db, locked per stack by "
            "the kernel): there is no team state to show or unlock; see `mlplane state check`",
        )
    return team


def show(session: Session) -> TeamStateInfo:
    return team_of(session).info()


def unlock(session: Session, lock_id: str) -> LockInfo:
    """Break the team state's lock `lock_id`: only that one, and only explicitly."""
    return team_of(session).unlock(lock_id)


def snapshot_path(project_file: str | Path) -> str:
    """A local copy of the team state's newest generation (fetched, no lock): what `mlplane
    status` lists on gcp."""
    return str(team_of(Session.open(project_file)).read_path())


def working_copy(project_file: str | Path) -> Path | None:
    """This machine's working copy of the team state (what `mlplane state check` checks on
    gcp): the one an interrupted apply left, else the last one; None before any apply here."""
    directory = Path(project_file).resolve().parent / ".mlplane" / TEAM_DIR
    path = directory / "sync.json"
    try:
        record = SyncRecord.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(str(path), "", f"unreadable ({exc.__class__.__name__})") from None
    name = record.pending.file if record.pending else record.working
    return directory / name if name else None
