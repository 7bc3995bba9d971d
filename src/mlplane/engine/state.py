"""The state store: what mlplane last applied, per resource, in SQLite (WAL).

Concurrency: every row carries a version; writes are guarded (`WHERE kind=? AND name=? AND
version=?`), zero rows updated means someone else wrote first (`StaleWrite`: re-read, retry).
Commands on the same stack are serialized by a per-stack advisory lock (`flock`, released by the
kernel when a process dies, even by kill -9); commands on different stacks run concurrently and
meet only on shared rows, which the guards protect.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlplane.errors import TransientError
from mlplane.model.compute import ResourceKey, ResourceSpec, spec_from_data, spec_to_data

SCHEMA = """
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


class StaleWrite(TransientError):
    """A guarded write found the row changed since it was read."""


class StackLocked(TransientError):
    """Another mlplane command holds the lock of a stack this command needs."""


@dataclass(frozen=True)
class RecordedResource:
    key: ResourceKey
    stack: str
    spec: ResourceSpec
    version: int
    updated_at: float = 0.0


@dataclass(frozen=True)
class StateWrite:
    """A guarded change of one row. `spec=None` removes it. `expected_version=None` means the
    row must not exist (insert) or, for a removal, that any version may be removed."""

    key: ResourceKey
    stack: str
    spec: ResourceSpec | None
    expected_version: int | None


class StateStore:
    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.locks_dir = self.path.with_name(self.path.name + ".locks")
        self.locks_dir.mkdir(exist_ok=True)
        self._busy_ms = int(busy_timeout * 1000)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self.connection().executescript(SCHEMA)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections are not shared across threads)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._busy_ms / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: takes the write lock up front)."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- reads ---------------------------------------------------------------------------------

    def load(self) -> dict[ResourceKey, RecordedResource]:
        rows = self.connection().execute(
            "SELECT kind, name, stack, spec, version, updated_at FROM resources"
        )
        return {r.key: r for r in map(_row, rows)}

    def get(self, key: ResourceKey) -> RecordedResource | None:
        row = (
            self.connection()
            .execute(
                "SELECT kind, name, stack, spec, version, updated_at FROM resources "
                "WHERE kind = ? AND name = ?",
                (key.kind, key.name),
            )
            .fetchone()
        )
        return _row(row) if row else None

    def stack(self, stack: str) -> list[RecordedResource]:
        rows = self.connection().execute(
            "SELECT kind, name, stack, spec, version, updated_at FROM resources WHERE stack = ? "
            "ORDER BY kind, name",
            (stack,),
        )
        return [_row(r) for r in rows]

    # -- guarded writes ------------------------------------------------------------------------

    def apply_write(self, conn: sqlite3.Connection, write: StateWrite) -> None:
        """Perform `write` inside the caller's transaction; raises StaleWrite."""
        k, now = write.key, time.time()
        if write.spec is None:
            if write.expected_version is None:
                conn.execute("DELETE FROM resources WHERE kind = ? AND name = ?", (k.kind, k.name))
                return
            cur = conn.execute(
                "DELETE FROM resources WHERE kind = ? AND name = ? AND version = ?",
                (k.kind, k.name, write.expected_version),
            )
            if cur.rowcount == 0 and self._version(conn, k) is not None:
                raise StaleWrite(f"{k}: changed by another command since it was read")
            return
        data = json.dumps(spec_to_data(write.spec), sort_keys=True, separators=(",", ":"))
        if write.expected_version is None:
            cur = conn.execute(
                "INSERT OR IGNORE INTO resources (kind, name, stack, spec, version, updated_at) "
                "VALUES (?, ?, ?, ?, 1, ?)",
                (k.kind, k.name, write.stack, data, now),
            )
        else:
            cur = conn.execute(
                "UPDATE resources SET stack = ?, spec = ?, version = version + 1, updated_at = ? "
                "WHERE kind = ? AND name = ? AND version = ?",
                (write.stack, data, now, k.kind, k.name, write.expected_version),
            )
        if cur.rowcount == 0:
            raise StaleWrite(f"{k}: changed by another command since it was read")

    def write(self, write: StateWrite) -> None:
        with self.transaction() as conn:
            self.apply_write(conn, write)

    @staticmethod
    def _version(conn: sqlite3.Connection, key: ResourceKey) -> int | None:
        row = conn.execute(
            "SELECT version FROM resources WHERE kind = ? AND name = ?", (key.kind, key.name)
        ).fetchone()
        return int(row[0]) if row else None

    # -- stack locks ---------------------------------------------------------------------------

    @contextmanager
    def lock(self, stacks: Iterable[str], timeout: float = 600.0) -> Iterator[None]:
        """Hold the advisory lock of each stack (sorted, so commands cannot deadlock)."""
        fds: list[int] = []
        try:
            for stack in sorted(set(stacks)):
                fds.append(self._acquire(stack, timeout))
            yield
        finally:
            for fd in reversed(fds):
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _acquire(self, stack: str, timeout: float) -> int:
        path = self.locks_dir / (stack.replace("/", "%") + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StackLocked(
                        f"stack '{stack}' is locked by another mlplane command "
                        f"(waited {timeout:g}s)",
                        delay=5.0,
                    ) from None
                time.sleep(0.02)


def _row(row: tuple[str, str, str, str, int, float]) -> RecordedResource:
    kind, name, stack, spec, version, updated_at = row
    key = ResourceKey(kind, name)
    return RecordedResource(key, stack, spec_from_data(kind, json.loads(spec)), version, updated_at)
