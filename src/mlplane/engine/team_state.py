"""The team state (`provider = "gcp"`): the engine's state database as one Cloud Storage object
that every machine and build of the team shares, locked as Terraform's gcs backend locks its
state (docs/decisions/1500-team-state-in-cloud-storage.md).

An apply (the store's `lease`, held inside its stack locks):

1. takes this machine's team flock (processes here queue), then the team lock: the lock object
   created with `ifGenerationMatch=0`, saying who, where, since when and for what. Held by
   another: `StateLocked` naming the holder (after `[state] lock_timeout` seconds);
2. reads the state object's generation G and starts a fresh working copy from it
   (`.mlplane/team/work-LOCK.db`; a file is never replaced in place);
3. applies on that copy (the engine as on one machine: journal, guarded rows, stack locks);
4. uploads it, if anything was written, with `ifGenerationMatch=G`: a 412 means someone broke
   the lock and wrote, and is `StateConflict` (nothing is overwritten; the copy is kept);
5. deletes the lock object with a precondition on its own generation.

A process that dies in 3 leaves the lock (it names its holder; `mlplane state unlock ID` breaks
it) and its copy, marked pending in `sync.json`: the next apply here uploads it if nobody wrote
since, else keeps it aside and says where. Dying between 4 and 5 leaves a lock over a state
that is complete. Reading (`read_store`) fetches the newest generation into
`.mlplane/team/snapshots/gG.db` and takes no lock.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path

from mlplane import __version__
from mlplane.errors import MlplaneError, PermanentError, TransientError
from mlplane.providers.base import SYSTEM_CLOCK, Clock
from mlplane.providers.objects import GenerationMismatch, ObjectStore

from . import schema
from .state import StateCorrupt, StateError, StateStore, private_dir
from .team_records import (
    LockInfo,
    NotLocked,
    Pending,
    StateConflict,
    StateGone,
    StateLocked,
    SyncRecord,
    TeamStateInfo,
    new_lock,
    with_generation,
    wrong_lock,
)

STATE_OBJECT = "state.db"
LOCK_OBJECT = "state.lock"
SQLITE_TYPE = "application/vnd.sqlite3"
# The lock is JSON, sent as text: gcp-storage-emulator parses an application/json media upload
# as if it were object metadata (Cloud Storage does not care).
LOCK_TYPE = "text/plain; charset=utf-8"
KEEP_SNAPSHOTS = 3
Event = Callable[[str], None]  # "locked", "fetched", "uploaded", "unlocked" (tests, crashes)


def _silent(_: str) -> None:
    pass


class TeamState:
    def __init__(
        self,
        objects: ObjectStore,
        prefix: str,
        directory: Path,
        *,
        who: Callable[[], str],
        operation: str,
        lock_timeout: float = 0.0,
        clock: Clock = SYSTEM_CLOCK,
        notify: Callable[[str], None] = _silent,
        on_event: Event | None = None,
    ) -> None:
        self.objects = objects
        self.state_name = prefix + STATE_OBJECT
        self.lock_name = prefix + LOCK_OBJECT
        self.uri = objects.uri(self.state_name)
        self.lock_uri = objects.uri(self.lock_name)
        self.directory = Path(directory)
        self.snapshots = self.directory / "snapshots"
        self.locks = self.directory / "locks"
        for d in (self.directory, self.snapshots, self.locks):
            private_dir(d)
        self.who = who
        self.operation = operation
        self.lock_timeout = lock_timeout
        self.clock = clock
        self.notify = notify
        self.on_event = on_event
        self._known: int | None = None  # the newest generation this process knows
        self._readers: dict[Path, StateStore] = {}
        self._working: StateStore | None = None

    # -- reading (no lock) ---------------------------------------------------------------------

    def read_path(self) -> Path:
        """A local copy of the newest generation (fetched once per process, then kept current
        by this process's own applies)."""
        for _ in range(3):
            if self._known is None:
                meta = self.objects.stat(self.state_name)
                self._known = meta.generation if meta else 0
            try:
                return self._snapshot(self._known)
            except GenerationMismatch:  # overwritten between stat and read: look again
                self._known = None
        raise TransientError(f"{self.uri} kept changing while it was read; try again")

    def read_store(self) -> StateStore:
        path = self.read_path()
        store = self._readers.get(path)
        if store is None:
            store = self._readers[path] = StateStore(path, locks_dir=self.locks)
        return store

    def _snapshot(self, generation: int) -> Path:
        path = self.snapshots / f"g{generation}.db"
        if path.exists():
            return path
        data = self.objects.read(self.state_name, generation) if generation else b""
        if data and not data.startswith(b"SQLite format 3\0"):
            raise StateCorrupt(
                f"{self.uri} (generation {generation}) is not an mlplane state database; "
                "restore an earlier generation from the bucket's object versions"
            )
        tmp = self.snapshots / f".g{generation}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return path

    # -- applying (the store's lease) ----------------------------------------------------------

    def working_store(self) -> StateStore:
        """The engine's store, leased by every apply (which points it at a fresh working copy
        first). Until then it is the newest generation, as read: what a preview plans from."""
        if self._working is None:
            store = StateStore(self.read_path(), locks_dir=self.locks)
            store.lease = self.lease
            self._working = store
        return self._working

    @contextmanager
    def lease(self, stacks: tuple[str, ...], timeout: float) -> Iterator[None]:
        store = self.working_store()
        with store.hold("team", "the team state on this machine", timeout):
            lock = self._take_lock(stacks)
            self._event("locked")
            try:
                base, carried = self._prepare(store, lock)
                self._event("fetched")
                writes, failed = store.writes, True
                try:
                    yield
                    failed = False
                finally:
                    self._finish(store, lock, base, carried or store.writes != writes, failed)
            finally:
                self._release(lock)
                self._event("unlocked")

    def _prepare(self, store: StateStore, lock: LockInfo) -> tuple[int, bool]:
        """Point `store` at the copy this apply works on; (its base generation, whether it
        carries changes not uploaded yet)."""
        sync = self._sync()
        meta = self.objects.stat(self.state_name)
        generation = meta.generation if meta else 0
        if meta is None and sync.generation != 0:  # -1: unknown since a conflict; it existed
            raise StateGone(
                f"{self.uri} does not exist, but this machine has seen its generation "
                f"{sync.generation}: someone deleted it. Restore it from the bucket's object "
                f"versions (`gcloud storage ls --all-versions {self.uri}`, then `gcloud storage "
                f"cp '{self.uri}#GENERATION' {self.uri}`); to start the team state afresh "
                f"instead, remove {self.directory / 'sync.json'}"
            )
        pending = sync.pending
        if pending is not None and meta is not None and pending.uploading == meta.md5_hash:
            # it was uploaded; the process died before it could write that down here
            sync = replace(sync, generation=generation, working=pending.file, pending=None)
            pending = None
        if pending is not None and (self.directory / pending.file).exists():
            kept = self.directory / pending.file
            if pending.base == generation:
                store.use(kept)
                self.notify(
                    f"resuming the team state an earlier command here did not upload ({kept}, "
                    f"over generation {generation}): this apply uploads it"
                )
                self._write_sync(replace(sync, pending=replace(pending, lock=lock.id)))
                return generation, True
            what = (
                "stopped while uploading its team state (if the upload landed, the team state "
                "has it)"
                if pending.uploading
                else "did not upload its team state"
            )
            self.notify(
                f"{kept}: an earlier command here {what}; it is kept there. It started from "
                f"generation {pending.base}, {generation} was written since, and this command "
                "starts from that (what the earlier one created is adopted by the next apply "
                "that declares it)"
            )
            sync = replace(sync, pending=None, unsent=(*sync.unsent, pending.file))
        work = self.directory / f"work-{lock.id}.db"
        self._copy(self._snapshot(generation), work)
        store.use(work)
        pending = Pending(lock.id, generation, work.name)
        self._write_sync(replace(sync, object=self.uri, pending=pending))
        return generation, False

    def _finish(
        self, store: StateStore, lock: LockInfo, base: int, changed: bool, failed: bool
    ) -> None:
        """Upload the copy if it changed; on failure the copy stays pending (or aside), and the
        error is raised, or only reported when the apply itself failed (its error says more)."""
        sync = self._sync()
        work = store.path.name
        if not changed:
            self._write_sync(replace(sync, generation=base, working=work, pending=None))
            self._known = base
            self._prune()
            return
        try:
            generation = self._upload(store, base, lock)
        except GenerationMismatch:
            meta = self.objects.stat(self.state_name)
            now = f"generation {meta.generation}" if meta else "no object"
            unsent = (*sync.unsent, work)
            self._write_sync(replace(sync, generation=-1, pending=None, unsent=unsent))
            error: MlplaneError = StateConflict(
                f"{self.uri} changed while this command held its lock (it was generation "
                f"{base}, now {now}): someone broke the lock and wrote. Nothing was "
                f"overwritten; this command's state is kept in {store.path}. What it created "
                "exists: the next apply that declares it adopts it"
            )
        except MlplaneError as exc:
            error = PermanentError(
                f"the team state was not uploaded to {self.uri} ({exc}); this machine keeps it "
                f"({store.path}), and its next apply uploads it if nobody has written the state "
                "since"
            )
        else:
            self._event("uploaded")
            self._write_sync(replace(sync, generation=generation, working=work, pending=None))
            self._known = generation
            self._prune()
            return
        if failed:
            self.notify(str(error))
            return
        raise error

    def _upload(self, store: StateStore, base: int, lock: LockInfo) -> int:
        tmp = self.directory / f"upload-{lock.id}.db"
        with suppress(FileNotFoundError):
            tmp.unlink()
        store.snapshot(tmp)
        data = tmp.read_bytes()
        digest = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        sync = self._sync()
        if sync.pending is not None:
            self._write_sync(replace(sync, pending=replace(sync.pending, uploading=digest)))
        for attempt in range(3):
            try:
                meta = self.objects.write(
                    self.state_name, data, if_generation_match=base, content_type=SQLITE_TYPE
                )
                break
            except TransientError as exc:
                if attempt == 2:
                    raise
                self.clock.sleep(max(exc.delay, 1.0))
        os.replace(tmp, self.snapshots / f"g{meta.generation}.db")
        return meta.generation

    # -- the lock ------------------------------------------------------------------------------

    def _take_lock(self, stacks: tuple[str, ...]) -> LockInfo:
        info = replace(
            new_lock(
                uuid.uuid4().hex,
                self.who(),
                self.operation,
                socket.gethostname(),
                os.getpid(),
                __version__,
                self.uri,
            ),
            stacks=stacks,
        )
        deadline = self.clock.monotonic() + self.lock_timeout
        delay, gone, busy = 1.0, 0, 0
        while True:
            try:
                meta = self.objects.write(
                    self.lock_name,
                    info.body(),
                    if_generation_match=0,
                    content_type=LOCK_TYPE,
                )
                return with_generation(info, meta.generation)
            except GenerationMismatch:
                holder = self.current_lock()
            except TransientError as exc:  # 429 (one write a second per object), 5xx
                busy += 1
                if busy == 3:
                    raise
                self.clock.sleep(max(exc.delay, 1.0))
                continue
            if holder is None:  # released between our create and our read: once more
                gone += 1
                if gone < 5:
                    continue
                raise TransientError(f"{self.lock_uri} keeps changing; try again", delay=5.0)
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise StateLocked(self.uri, holder, self.lock_timeout)
            self.clock.sleep(min(delay, left))
            delay = min(delay * 2, 10.0)

    def current_lock(self) -> LockInfo | None:
        for _ in range(3):
            meta = self.objects.stat(self.lock_name)
            if meta is None:
                return None
            try:
                return LockInfo.from_body(
                    self.objects.read(self.lock_name, meta.generation), meta.generation
                )
            except GenerationMismatch:
                continue
        return None

    def _release(self, lock: LockInfo) -> None:
        for attempt in range(3):
            try:
                self.objects.delete(self.lock_name, if_generation_match=lock.generation)
                return
            except GenerationMismatch:
                holder = self.current_lock()
                now = f"; the team state is now {holder.describe()}" if holder else ""
                self.notify(f"this command's lock {lock.id} was broken while it ran{now}")
                return
            except TransientError as exc:
                if attempt == 2:
                    self.notify(
                        f"the lock {lock.id} could not be released ({exc}); break it with "
                        f"`mlplane state unlock {lock.id}`"
                    )
                    return
                self.clock.sleep(max(exc.delay, 1.0))

    def unlock(self, lock_id: str) -> LockInfo:
        """Break the lock `lock_id` (and only that one); returns what it said."""
        held = self.current_lock()
        if held is None:
            raise NotLocked(f"the team state {self.uri} is not locked")
        if held.id != lock_id:
            raise wrong_lock(lock_id, held)
        try:
            self.objects.delete(self.lock_name, if_generation_match=held.generation)
        except GenerationMismatch:
            raise TransientError(
                f"{self.lock_uri} changed while it was being broken; look again "
                "(`mlplane state show`)"
            ) from None
        return held

    def info(self) -> TeamStateInfo:
        meta = self.objects.stat(self.state_name)
        sync = self._sync()

        def local(name: str) -> Path | None:
            path = self.directory / name
            return path if name and path.exists() else None

        return TeamStateInfo(
            self.uri,
            meta.generation if meta else 0,
            meta.size if meta else 0,
            meta.updated if meta else "",
            self.current_lock(),
            local(sync.working),
            local(sync.pending.file) if sync.pending else None,
            tuple(p for p in map(local, sync.unsent) if p is not None),
        )

    # -- this machine's files ------------------------------------------------------------------

    def _sync(self) -> SyncRecord:
        path = self.directory / "sync.json"
        try:
            record = SyncRecord.from_json(path.read_text())
        except FileNotFoundError:
            return SyncRecord(object=self.uri)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateCorrupt(
                f"{path}: unreadable ({exc.__class__.__name__}); it names the working copy an "
                "earlier command here did not upload, if any (work-*.db beside it): move it "
                "aside, and the next apply starts from the team state"
            ) from None
        if record.object != self.uri:  # [state] names another object now: start afresh
            kept = (*record.unsent, *((record.pending.file,) if record.pending else ()))
            return SyncRecord(object=self.uri, unsent=kept)
        return record

    def _write_sync(self, record: SyncRecord) -> None:
        path = self.directory / "sync.json"
        tmp = path.with_name(f".sync.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(record.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @staticmethod
    def _copy(source: Path, target: Path) -> None:
        """A consistent copy (SQLite's backup: a WAL a reader left is folded in)."""
        with suppress(FileNotFoundError):
            target.unlink()
        try:
            src = sqlite3.connect(source)
            try:
                schema.backup(src, target)
            finally:
                src.close()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{source}: cannot copy the team state ({exc})") from None

    def _prune(self) -> None:
        """Drop working copies no record names, and all but the newest snapshots."""
        sync = self._sync()
        keep = {sync.working, *sync.unsent, *((sync.pending.file,) if sync.pending else ())}
        for path in self.directory.glob("work-*.db"):
            if path.name not in keep:
                _remove_db(path)
        snaps = sorted(
            (p for p in self.snapshots.glob("g*.db") if p.stem[1:].isdigit()),
            key=lambda p: int(p.stem[1:]),
        )
        for path in snaps[:-KEEP_SNAPSHOTS]:
            if path not in self._readers:
                _remove_db(path)

    def _event(self, name: str) -> None:
        if self.on_event is not None:
            self.on_event(name)


def _remove_db(path: Path) -> None:
    for extra in ("", "-wal", "-shm"):
        with suppress(FileNotFoundError):
            path.with_name(path.name + extra).unlink()
