"""The state database's schema: its version (`PRAGMA user_version`) and the migrations to it.

Version 1 is the `resources` and `journal` tables as every mlplane before versioning created them
(those databases have user_version 0 and migrate to 1 by only stamping the version). Before a
database that holds anything is migrated, it is copied with SQLite's online backup to
`state.db.v{OLD}-{UTC time}.bak` beside it (owner-only), so a migration that goes wrong loses
nothing. A database newer than this mlplane is refused, never downgraded.
"""

from __future__ import annotations

import os
import time

from mlplane.errors import PermanentError

TYPE_CHECKING = False  # as typing's, without importing typing (`mlplane status`'s start-up path)
if TYPE_CHECKING:  # and sqlite3: `status` reads SCHEMA_VERSION here, the rows without sqlite3
    import sqlite3
    from pathlib import Path

RESOURCES = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    stack TEXT NOT NULL,
    spec TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE INDEX IF NOT EXISTS resources_stack ON resources (stack);
"""

JOURNAL = """
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    stack TEXT NOT NULL,
    owner TEXT NOT NULL,
    step_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    op TEXT NOT NULL,
    request_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    operation TEXT,
    principal TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS journal_open ON journal (status, stack);
"""

# (version it brings the database to, SQL). Append; never edit a released step.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, RESOURCES + JOURNAL),)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class SchemaTooNew(PermanentError):
    """The state database was written by a newer mlplane."""


def version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def is_empty(conn: sqlite3.Connection) -> bool:
    return int(conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]) == 0


def backup(conn: sqlite3.Connection, target: Path) -> Path:
    """Copy the database behind `conn` to `target` (created owner-only; must not exist)."""
    import sqlite3

    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    dst = sqlite3.connect(target)
    try:
        conn.backup(dst)
    finally:
        dst.close()
    return target


def backup_path(path: Path, tag: str) -> Path:
    """`state.db.{tag}-{UTC time}.bak` beside `path`, not taken yet."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.{tag}-{stamp}.bak")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{tag}-{stamp}-{n}.bak")
    return target


def migrate(conn: sqlite3.Connection, path: Path) -> Path | None:
    """Bring the database to SCHEMA_VERSION; the backup made first, if one was needed."""
    current = version(conn)
    if current == SCHEMA_VERSION:
        return None
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{path}: schema version {current} was written by a newer mlplane (this one knows "
            f"up to {SCHEMA_VERSION}); upgrade mlplane to use it"
        )
    saved = None if is_empty(conn) else backup(conn, backup_path(path, f"v{current}"))
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = version(conn)  # another process may have migrated meanwhile
        for target, sql in MIGRATIONS:
            if target > current:
                for statement in filter(str.strip, sql.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return saved


def backups(path: Path) -> list[Path]:
    """Backups of `path` (before migrations, before repairs), oldest first."""
    return sorted(path.parent.glob(f"{path.name}.*.bak"), key=lambda p: (p.stat().st_mtime, p))
