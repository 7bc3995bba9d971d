"""The state store: what mlplane last applied, per resource, in SQLite (WAL).

Concurrency: every row carries a version; writes are guarded (`WHERE kind=? AND name=? AND
version=?`), zero rows updated means someone else wrote first (`StaleWrite`: re-read, retry).
Commands on the same stack are serialized by a per-stack advisory lock (`flock`, released by the
kernel when a process dies, even by kill -9); commands on different stacks run concurrently and
meet only on shared rows, which the guards protect.

With `provider = "gcp"` the store is the team state's working copy: a `lease` (set by
`engine/team_state.py`) runs inside `lock()`, after the stack locks, so every apply takes the
team's lock, works on a fresh copy and writes it back (docs/decisions/1500).

At rest: the database, its WAL and shared-memory files, the lock files and any backup are
owner-only (0600; directories 0700). A damaged file is one `StateCorrupt` line naming the file and
`mlplane state check`, never an sqlite3 traceback; the schema is versioned and migrated, with a
backup first (`schema.py`).
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from mlplane.errors import PermanentError, TransientError, one_line
from mlplane.model.kinds import ResourceKey

if TYPE_CHECKING:
    from mlplane.model.compute import ResourceSpec

from . import schema
from .state_index import RecordIndex, index_sql, rows_to_index

_COLUMNS = "kind, name, stack, spec, version, updated_at"


class StaleWrite(TransientError):
    """A guarded write found the row changed since it was read."""


class LockTimeout(TransientError):
    """Another mlplane command holds the lock of a stack this command needs."""


class StateError(PermanentError):
    """The state database cannot be used (unwritable, full); the message names the file. One
    line, whatever a damaged row echoes into it."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class StateCorrupt(StateError):
    """The state database, or a row in it, is damaged; the message names the file, the row and
    the way to recover."""


class StateBusy(TransientError):
    """Another process held the state database's write lock for longer than the busy timeout."""


_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}
_BUSY = {"SQLITE_BUSY", "SQLITE_LOCKED"}
_UNUSABLE = {"SQLITE_CANTOPEN", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_PERM", "SQLITE_READONLY"}
CHECK_HINT = "run `mlplane state check` to see what can be recovered"


def database_error(path: Path, exc: sqlite3.DatabaseError) -> Exception:
    """The mlplane error for an sqlite3 error on the state database (programming errors, such
    as bad SQL, are returned as they are)."""
    code = (getattr(exc, "sqlite_errorname", "") or "").split("_")[:2]
    name = "_".join(code)
    reason = str(exc).splitlines()[0] if str(exc) else name
    if name in _CORRUPT:
        return StateCorrupt(f"{path}: the state database is damaged ({reason}); {CHECK_HINT}")
    if name in _BUSY:
        return StateBusy(f"{path}: the state database stayed locked by another process ({reason})")
    if name in _UNUSABLE:
        return StateError(f"{path}: cannot use the state database ({reason})")
    return exc


def short_reason(exc: BaseException) -> str:
    """One line for a decoding error (a pydantic error's first problem, without its URL)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ()))
            return f"{loc}: {first.get('msg', '')}" if loc else str(first.get("msg", ""))
        except Exception:  # fall back to the text below
            pass
    text = (str(exc).splitlines() or [""])[0] or type(exc).__name__
    return text[:200]


def private_file(path: Path) -> None:
    """Create `path` owner-only if it is missing; take group/other access away if it exists.

    An existing file is only chmod-ed by path, never opened: closing any descriptor of a file
    drops every POSIX lock this process holds on it, and SQLite's locks on the database, its
    WAL and shared memory are POSIX locks (a second StateStore in a process that already has
    the database open would otherwise corrupt it under concurrent writers)."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)


def private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        with suppress(PermissionError):  # not ours to change: `mlplane state check` says so
            os.chmod(path, 0o700)


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


# (stacks, timeout) -> a context held for the whole of an apply, inside the stack locks.
Lease = Callable[[tuple[str, ...], float], AbstractContextManager[None]]


class StateStore:
    def __init__(
        self, path: Path, *, busy_timeout: float = 30.0, locks_dir: Path | None = None
    ) -> None:
        self.path = Path(path)
        private_dir(self.path.parent)
        self.locks_dir = locks_dir or self.path.with_name(self.path.name + ".locks")
        private_dir(self.locks_dir)
        self.lease: Lease | None = None  # the team state's, with provider = "gcp"
        self.writes = 0  # write transactions committed (the team state uploads only if any)
        # SQLite creates the WAL and shared-memory files with the database file's mode.
        private_file(self.path)
        for suffix in ("-wal", "-shm"):
            if (extra := self.path.with_name(self.path.name + suffix)).exists():
                private_file(extra)
        self._busy = busy_timeout
        # Idle connections; a caller borrows one for a read or a transaction and returns it,
        # so the pool never holds more connections than there were concurrent callers.
        self._idle: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        with self.connection() as conn:
            self.backup = schema.migrate(conn, self.path)  # the copy made before migrating

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._busy, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout={int(self._busy * 1000)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise database_error(self.path, exc) from None
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Borrow a connection (autocommit mode) for reads or your own statements. sqlite3
        errors that mean a damaged, locked or unusable file become StateCorrupt/StateBusy/
        StateError naming the file."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._open()
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            raise database_error(self.path, exc) from None
        finally:
            if conn.in_transaction:
                with suppress(sqlite3.Error):  # the error being raised says more
                    conn.execute("ROLLBACK")
            self._idle.put(conn)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: takes the write lock up front)."""
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self.writes += 1

    def use(self, path: Path) -> None:
        """Point the store at another database file (the team state's next working copy, never
        an older file replaced in place: a connection another process still has open to the old
        file then stays harmless). Idle connections are closed; call it when none is borrowed
        (before an apply starts its threads)."""
        self.close()
        self.path = Path(path)
        private_file(self.path)
        with self.connection() as conn:
            self.backup = schema.migrate(conn, self.path)

    def snapshot(self, target: Path) -> Path:
        """A consistent, self-contained copy of the database (its WAL folded in, journal mode
        DELETE) at `target`, owner-only; `target` must not exist."""
        with self.connection() as conn:
            schema.backup(conn, target)
        try:
            copy = sqlite3.connect(target, isolation_level=None)
            try:
                copy.execute("PRAGMA journal_mode=DELETE")
            finally:
                copy.close()
        except sqlite3.DatabaseError as exc:
            raise database_error(target, exc) from None
        return target

    def journal_mode(self) -> str:
        with self.connection() as conn:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0])

    # -- reads ---------------------------------------------------------------------------------

    def load(self) -> dict[ResourceKey, RecordedResource]:
        with self.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM resources").fetchall()
        return {r.key: r for r in map(self._decode, rows)}

    def index(self, with_specs: tuple[str, ...] = ()) -> list[RecordIndex]:
        """What is recorded, without decoding the specs (for views that list; fast); the JSON
        of the specs of the kinds in `with_specs`."""
        with self.connection() as conn:
            return rows_to_index(conn.execute(index_sql(with_specs)).fetchall())

    def get(self, key: ResourceKey) -> RecordedResource | None:
        with self.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM resources WHERE kind = ? AND name = ?",
                (key.kind, key.name),
            ).fetchone()
        return self._decode(row) if row else None

    def stack(self, stack: str) -> list[RecordedResource]:
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM resources WHERE stack = ? ORDER BY kind, name", (stack,)
            ).fetchall()
        return [self._decode(r) for r in rows]

    def _decode(self, row: tuple[str, str, str, str, int, float]) -> RecordedResource:
        try:
            return record_from_row(row)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise StateCorrupt(
                f"{self.path}: the record of {row[0]}/{row[1]} (stack {row[2]}) is unreadable "
                f"({short_reason(exc)}); {CHECK_HINT}"
            ) from None

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
        from mlplane.model.compute import spec_to_data

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

    # -- locks -------------------------------------------------------------------------------

    @contextmanager
    def lock(self, stacks: Iterable[str], timeout: float = 600.0) -> Iterator[None]:
        """Hold the advisory lock of each stack (sorted, so commands cannot deadlock)."""
        fds: list[int] = []
        names = tuple(sorted(set(stacks)))
        try:
            for stack in names:
                fds.append(self._acquire(f"stack%{stack}", f"stack '{stack}'", timeout))
            if self.lease is None:
                yield
            else:
                with self.lease(names, timeout):
                    yield
        finally:
            for fd in reversed(fds):
                _release(fd)

    @contextmanager
    def hold(self, name: str, what: str, timeout: float = 600.0) -> Iterator[None]:
        """Hold a named advisory lock of this store's lock directory (`what` for messages)."""
        fd = self._acquire(name, what, timeout)
        try:
            yield
        finally:
            _release(fd)

    @contextmanager
    def lock_resource(self, key: ResourceKey, timeout: float = 600.0) -> Iterator[None]:
        """Serialize read-modify-write of one resource across threads and processes (shared
        resources such as the URL map, and kinds without a fingerprint such as the OpenAPI
        config, where the provider itself would let the last writer win)."""
        fd = self._acquire(f"resource%{key.kind}%{key.name}", str(key), timeout)
        try:
            yield
        finally:
            _release(fd)

    def _acquire(self, name: str, what: str, timeout: float) -> int:
        path = self.locks_dir / (name.replace("/", "%") + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(fd).st_mode & 0o077:  # made by an older mlplane
            os.fchmod(fd, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(
                        f"{what} is locked by another mlplane command (waited {timeout:g}s)",
                        delay=5.0,
                    ) from None
                time.sleep(0.005)


def _release(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@lru_cache(maxsize=4096)
def record_from_row(row: tuple[str, str, str, str, int, float]) -> RecordedResource:
    """A stored row as its record (memoized: a row, and what it decodes to, never change; a
    deploy step reads the store about five times)."""
    from mlplane.model.compute import spec_from_data

    kind, name, stack, spec, version, updated_at = row
    key = ResourceKey(kind, name)
    return RecordedResource(key, stack, spec_from_data(kind, json.loads(spec)), version, updated_at)
