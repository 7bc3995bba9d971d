"""`mlplane state check [--repair]`: is the state database sound, and what can be done if not.

The check reads without creating or migrating anything: SQLite's integrity check, the schema
version, every resource record and journal row decoded as the engine would, the open intents
(a dead run's, rolled forward by the next apply of their stack), and the files' modes. Each
problem is one line naming the file (and the row) with its recovery.

`--repair` does only what loses nothing: owner-only modes; the schema migration (a backup
first); and, after a backup of the database, closing each unreadable journal row as failed with
a readable empty payload (the engine cannot roll such an intent forward; the next apply
observes the resource it names and adopts it if it matches what is declared, or refuses it). A
damaged database file and unreadable resource records are not repaired: the line says how to
restore or salvage them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlplane.errors import one_line

from . import schema
from .desired import check_stack_name
from .journal import IntentStatus, describe_row, intent_from_row
from .state import StateStore, record_from_row, short_reason
from .steps import Op

_CLOSED = {s.value for s in IntentStatus if s is not IntentStatus.OPEN}
_OPS = {o.value for o in Op}
_REPAIRED = "unreadable row closed by `mlplane state check --repair`"
EMPTY_PAYLOAD = json.dumps({"changes": [], "declared": None, "spec": None}, sort_keys=True)


@dataclass(frozen=True)
class Problem:
    message: str  # what is wrong, naming the file (and row)
    recovery: str  # what to do, or what --repair does
    repairable: bool = False
    row: int | None = None  # an unreadable journal row's id

    def line(self) -> str:
        return one_line(f"{self.message}; {self.recovery}")


@dataclass(frozen=True)
class StateReport:
    path: Path
    exists: bool
    readable: bool = False
    integrity: str = ""
    schema_version: int | None = None
    resources: int = 0
    stacks: int = 0
    journal_rows: int = 0
    open_intents: tuple[str, ...] = ()
    backups: tuple[Path, ...] = ()
    problems: tuple[Problem, ...] = ()
    repaired: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> list[str]:
        """The report's lines for a readable database (problems are printed apart)."""
        if not self.exists:
            return [f"{self.path}: no state yet (nothing has been applied from this project)"]
        if not self.readable:
            return []
        current = self.schema_version == schema.SCHEMA_VERSION
        lines = [
            f"state:     {self.path}",
            f"integrity: {self.integrity}",
            f"schema:    version {self.schema_version}"
            + (" (current)" if current else f" (this mlplane writes {schema.SCHEMA_VERSION})"),
            f"recorded:  {self.resources} resource(s) in {self.stacks} stack(s)",
            f"journal:   {self.journal_rows} intent(s), {len(self.open_intents)} open",
        ]
        lines += [
            f"  open: {d} (the next apply of its stack rolls it forward)" for d in self.open_intents
        ]
        lines.append("backups:   " + (", ".join(p.name for p in self.backups) or "none"))
        lines += [f"repaired:  {r}" for r in self.repaired]
        would = [p for p in self.problems if p.repairable]
        if not self.problems:
            lines.append("repairs:   none needed")
        elif would:
            lines.append(f"repairs:   {len(would)} that `mlplane state check --repair` would make")
        return lines


def check_state(path: Path | str) -> StateReport:
    path = Path(path)
    found = tuple(schema.backups(path)) if path.parent.exists() else ()
    if not path.exists():
        return StateReport(path, exists=False, backups=found)
    problems = _mode_problems(path, found)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
    except sqlite3.DatabaseError as exc:
        return StateReport(path, True, problems=(*problems, _damaged(path, exc, found)))
    try:
        return _check_open(conn, path, found, problems)
    except sqlite3.DatabaseError as exc:
        return StateReport(
            path, True, backups=found, problems=(*problems, _damaged(path, exc, found))
        )
    finally:
        conn.close()


def _check_open(
    conn: sqlite3.Connection, path: Path, found: tuple[Path, ...], problems: list[Problem]
) -> StateReport:
    rows = conn.execute("PRAGMA integrity_check").fetchall()
    integrity = "ok" if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:3])
    if integrity != "ok":
        problems.append(_damaged(path, f"integrity check: {integrity}", found))
        return StateReport(path, True, True, integrity, backups=found, problems=tuple(problems))
    version = schema.version(conn)
    if version > schema.SCHEMA_VERSION:
        problems.append(
            Problem(
                f"{path}: schema version {version} was written by a newer mlplane "
                f"(this one knows up to {schema.SCHEMA_VERSION})",
                "upgrade mlplane; nothing here was changed",
            )
        )
    elif version < schema.SCHEMA_VERSION:
        problems.append(
            Problem(
                f"{path}: schema version {version} is older than this mlplane's "
                f"({schema.SCHEMA_VERSION})",
                "`mlplane state check --repair` (or any command that applies) migrates it, "
                "after a backup",
                repairable=True,
            )
        )
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    resources, stacks = 0, set()
    if "resources" in tables:
        for row in conn.execute(
            "SELECT kind, name, stack, spec, version, updated_at FROM resources"
        ):
            resources += 1
            stacks.add(row[2])
            try:
                record_from_row(row)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                problems.append(_bad_record(path, row, exc, found))
    journal_rows, open_now = 0, []
    if "journal" in tables:
        for row in conn.execute("SELECT * FROM journal ORDER BY id"):
            journal_rows += 1
            try:
                intent = intent_from_row(row)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                problems.append(_bad_journal_row(path, row, exc))
                continue
            if intent.status is IntentStatus.OPEN:
                open_now.append(
                    f"{intent.op} {intent.key} in stack {intent.stack} (run {intent.run_id})"
                )
    return StateReport(
        path, True, True, integrity, version, resources, len(stacks), journal_rows,
        tuple(open_now), found, tuple(problems),
    )  # fmt: skip


def _damaged(path: Path, why: object, found: tuple[Path, ...]) -> Problem:
    why = (str(why).splitlines() or ["unreadable"])[0]
    salvage = f"salvage what is readable (sqlite3 {path} .recover | sqlite3 {path}.recovered)"
    if found:
        recovery = (
            f"restore the newest backup over it (cp {found[-1]} {path}; an apply then adopts "
            f"what was created since, if it matches), or {salvage}"
        )
    else:
        recovery = (
            f"{salvage}, or move it aside (mv {path} {path}.damaged): the next apply adopts "
            "resources that exist exactly as declared and refuses the rest"
        )
    return Problem(f"{path}: the state database is damaged ({why})", recovery)


def _bad_record(
    path: Path, row: tuple[Any, ...], exc: BaseException, found: tuple[Path, ...]
) -> Problem:
    kind, name, stack = row[0], row[1], row[2]
    restore = f"restore {found[-1].name}, or " if found else ""
    return Problem(
        f"{path}: the record of {kind}/{name} (stack {stack}) is unreadable ({short_reason(exc)})",
        f'not repaired automatically: {restore}delete that row (sqlite3 {path} "DELETE '
        f"FROM resources WHERE kind='{kind}' AND name='{name}'\"); the next apply of stack "
        f"{stack} adopts {kind}/{name} if it matches",
    )


def _bad_journal_row(path: Path, row: tuple[Any, ...], exc: BaseException) -> Problem:
    what = describe_row(row)
    action = "blanks its payload" if row[12] in _CLOSED else "closes it as failed"
    return Problem(
        f"{path}: {what} is unreadable ({short_reason(exc)})",
        f"`mlplane state check --repair` {action}, after a backup (the next apply observes "
        f"{row[5]}/{row[6]} and adopts or refuses it)",
        repairable=True,
        row=int(row[0]),
    )


def _mode_problems(path: Path, found: tuple[Path, ...]) -> list[Problem]:
    problems = []
    for p, want in _state_files(path, found):
        mode = p.stat().st_mode & 0o777
        if mode & 0o077:
            problems.append(
                Problem(
                    f"{p}: mode {mode:o} lets other users read it",
                    f"`mlplane state check --repair` makes it {want:o}",
                    repairable=True,
                )
            )
    return problems


def _state_files(path: Path, found: tuple[Path, ...]) -> list[tuple[Path, int]]:
    files = [(path.parent, 0o700), (path, 0o600)]
    files += [(path.with_name(path.name + s), 0o600) for s in ("-wal", "-shm")]
    locks = path.with_name(path.name + ".locks")
    if locks.is_dir():
        files.append((locks, 0o700))
        files += [(p, 0o600) for p in sorted(locks.iterdir())]
    files += [(p, 0o600) for p in found]
    return [(p, want) for p, want in files if p.exists()]


def repair_state(path: Path | str, *, lock_timeout: float = 10.0) -> StateReport:
    """Make the safe repairs the check found; the check again, with what was repaired."""
    path = Path(path)
    before = check_state(path)
    if not before.exists or not any(p.repairable for p in before.problems):
        return before
    done: list[str] = []
    for p, want in _state_files(path, before.backups):
        if p.stat().st_mode & 0o077:
            os.chmod(p, want)
            done.append(f"{p.name} made {want:o}")
    old = before.schema_version
    if before.readable and old is not None and old < schema.SCHEMA_VERSION:
        store = StateStore(path)  # migrates, after a backup
        if store.backup is not None:
            done.append(f"schema migrated to {schema.SCHEMA_VERSION} (backup {store.backup.name})")
        store.close()
    rows = [p.row for p in before.problems if p.row is not None]
    if rows:
        done += _close_unreadable_rows(path, rows, lock_timeout)
    return replace(check_state(path), repaired=tuple(done))


def _close_unreadable_rows(path: Path, rows: list[int], lock_timeout: float) -> list[str]:
    store = StateStore(path)
    try:
        with store.connection() as conn:
            marks = ",".join("?" * len(rows))
            found = conn.execute(
                f"SELECT id, stack, status, op FROM journal WHERE id IN ({marks})", rows
            ).fetchall()
            saved = schema.backup(conn, schema.backup_path(path, "repair"))
        # Hold the stacks' locks, so no apply rolls these intents forward meanwhile (a name no
        # stack can have is no apply's to hold).
        stacks = sorted({stack for _, stack, _, _ in found if _valid_stack(stack)})
        done = [f"backup {saved.name}"]
        with store.lock(stacks, lock_timeout), store.transaction() as conn:
            for id_, _, status, op in found:
                closed = status in _CLOSED
                conn.execute(
                    "UPDATE journal SET status = ?, op = ?, payload = ?, operation = NULL, "
                    "error = ?, finished_at = COALESCE(finished_at, ?) WHERE id = ?",
                    (
                        status if closed else IntentStatus.FAILED.value,
                        op if op in _OPS else Op.NONE.value,
                        EMPTY_PAYLOAD, _REPAIRED, time.time(), id_,
                    ),
                )  # fmt: skip
                done.append(
                    f"journal row {id_} {'payload blanked' if closed else 'closed as failed'}"
                )
        return done
    finally:
        store.close()


def _valid_stack(name: object) -> bool:
    try:
        check_stack_name(str(name))
    except ValueError:
        return False
    return isinstance(name, str)
