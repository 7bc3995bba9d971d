"""The team state's records: the lock object's content (created only if absent, saying who holds
it, since when and for what; deleted with a precondition on its own generation, so a holder
never deletes a lock it no longer holds), this machine's `sync.json`, and the errors
(docs/decisions/1501).
"""

from __future__ import annotations

import calendar
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from mlplane.errors import ConfigError, PermanentError, TransientError, one_line


@dataclass(frozen=True)
class LockInfo:
    """What the lock object says (its fields as Terraform's LockInfo), plus its generation."""

    id: str
    who: str  # the principal that took it
    operation: str  # the command line
    host: str
    pid: int
    created: str  # RFC 3339, UTC
    version: str  # mlplane's
    path: str  # the state object's URI
    stacks: tuple[str, ...] = ()
    generation: int = field(default=0, compare=False)

    def body(self) -> bytes:
        data = {
            "id": self.id,
            "who": self.who,
            "operation": self.operation,
            "host": self.host,
            "pid": self.pid,
            "created": self.created,
            "version": self.version,
            "path": self.path,
            "stacks": list(self.stacks),
        }
        return json.dumps(data, indent=1, sort_keys=True).encode()

    @classmethod
    def from_body(cls, data: bytes, generation: int) -> LockInfo:
        """A lock as its object says; a lock mlplane did not write still has an id (its
        generation), so it can be reported and broken."""
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            doc = {}

        def text(key: str) -> str:
            return one_line(str(doc.get(key, "?")))[:300]

        pid = doc.get("pid")
        stacks = doc.get("stacks")
        return cls(
            id=text("id") if "id" in doc else str(generation),
            who=text("who"),
            operation=text("operation"),
            host=text("host"),
            pid=pid if isinstance(pid, int) else 0,
            created=text("created"),
            version=text("version"),
            path=text("path"),
            stacks=tuple(one_line(str(s))[:200] for s in stacks[:20])
            if isinstance(stacks, list)
            else (),
            generation=generation,
        )

    def age(self, now: float | None = None) -> str:
        try:
            then = calendar.timegm(time.strptime(self.created, "%Y-%m-%dT%H:%M:%SZ"))
        except (ValueError, OverflowError):
            return "age unknown"
        seconds = max(0, int((time.time() if now is None else now) - then))
        if seconds < 120:
            return f"{seconds} s ago"
        if seconds < 7200:
            return f"{seconds // 60} min ago"
        return f"{seconds // 3600} h ago"

    def describe(self) -> str:
        where = f"host {self.host}, pid {self.pid}" if self.pid else f"host {self.host}"
        return (
            f"locked by {self.who} ({where}) since {self.created} ({self.age()}), running "
            f"`{self.operation}`; lock id {self.id}"
        )


def new_lock(
    lock_id: str, who: str, operation: str, host: str, pid: int, version: str, path: str
) -> LockInfo:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return LockInfo(lock_id, who, operation, host, pid, created, version, path)


class StateLocked(TransientError):
    """Another command holds the team state's lock; the message names it and how to break it
    (only if it is no longer running)."""

    def __init__(self, object_uri: str, lock: LockInfo, waited: float) -> None:
        self.lock = lock
        wait = f" (waited {waited:g} s)" if waited else ""
        super().__init__(
            f"the team state {object_uri} is {lock.describe()}{wait}. Try again when it is done; "
            f"if that command is no longer running, break its lock: `mlplane state unlock "
            f"{lock.id}`",
            delay=5.0,
        )


class NotLocked(PermanentError):
    """`mlplane state unlock` found no lock."""


def wrong_lock(lock_id: str, held: LockInfo) -> ConfigError:
    return ConfigError(
        "argument", "LOCK_ID", f"'{lock_id}' is not the lock's id: the team state is "
        f"{held.describe()}"
    )  # fmt: skip


def with_generation(lock: LockInfo, generation: int) -> LockInfo:
    return replace(lock, generation=generation)


class StateConflict(PermanentError):
    """The state object changed while this command held the lock (someone broke it and wrote):
    nothing was overwritten, and this command's copy is kept; the message says where."""


class StateGone(PermanentError):
    """The state object is gone though this machine has seen it: restore it, do not restart."""


@dataclass(frozen=True)
class Pending:
    """A working copy that a lease started and has not uploaded yet."""

    lock: str
    base: int  # the generation it started from
    file: str  # its name in the team directory
    uploading: str = ""  # the md5 of the bytes being uploaded (a crash may follow the upload)


@dataclass(frozen=True)
class SyncRecord:
    """`sync.json`: what this machine's working copies are to the state object."""

    object: str = ""
    generation: int = 0  # the generation the current working copy equals (-1: unknown)
    working: str = ""
    pending: Pending | None = None
    unsent: tuple[str, ...] = ()  # copies set aside after a conflict: never deleted

    def to_json(self) -> str:
        pending = None
        if self.pending is not None:
            p = self.pending
            pending = {"lock": p.lock, "base": p.base, "file": p.file, "uploading": p.uploading}
        doc = {
            "object": self.object,
            "generation": self.generation,
            "working": self.working,
            "pending": pending,
            "unsent": list(self.unsent),
        }
        return json.dumps(doc, indent=1)

    @classmethod
    def from_json(cls, text: str) -> SyncRecord:
        doc = json.loads(text)
        p = doc.get("pending")
        pending = None
        if p:
            pending = Pending(
                str(p["lock"]), int(p["base"]), str(p["file"]), str(p.get("uploading", ""))
            )
        return cls(
            str(doc.get("object", "")),
            int(doc.get("generation", 0)),
            str(doc.get("working", "")),
            pending,
            tuple(str(u) for u in doc.get("unsent", ())),
        )


@dataclass(frozen=True)
class TeamStateInfo:
    object: str
    generation: int  # 0: no state object yet
    size: int
    updated: str
    lock: LockInfo | None
    working: Path | None  # this machine's current working copy
    pending: Path | None  # a copy a dead or failed apply here did not upload
    unsent: tuple[Path, ...]  # copies set aside after a conflict
