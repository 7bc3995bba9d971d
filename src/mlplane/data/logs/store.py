"""The local log store: `.mlplane/logs/RESOURCE/LOG_ID.jsonl` beside the project file.

One append-only file of JSON lines per (instance, log). Writers append whole batches of lines
with O_APPEND under an exclusive `flock`, so writers in several processes never interleave
inside a line and never lose each other's entries. Readers take no lock: they read up to the
last newline and leave a batch still being written for their next read.
"""

from __future__ import annotations

import fcntl
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlplane.data.logs.entry import check_instance_name, check_log_id

STATE_DIR = ".mlplane"  # the project's state directory (as providers.local.paths.STATE_DIR)
LOGS_DIR = "logs"
SUFFIX = ".jsonl"


class LogSink(Protocol):
    """Where a LogWriter's flushed batches (whole JSON lines) go: this store, Cloud Logging."""

    def append(self, resource: str, log_id: str, data: bytes) -> None: ...


@dataclass(frozen=True)
class LocalLogStore:
    root: Path

    @classmethod
    def for_project(cls, project_file: Path | str) -> LocalLogStore:
        return cls(Path(project_file).resolve().parent / STATE_DIR / LOGS_DIR)

    def path(self, resource: str, log_id: str) -> Path:
        check_instance_name(resource)
        name = urllib.parse.quote(check_log_id(log_id), safe="")
        return self.root / resource / f"{name}{SUFFIX}"

    def append(self, resource: str, log_id: str, data: bytes) -> None:
        """Append `data` (whole lines) as one locked write."""
        if not data:
            return
        path = self.path(resource, log_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)  # releases the lock

    def logs_of(self, resource: str) -> dict[str, Path]:
        """log id -> file, for one instance's logs."""
        d = self.root / check_instance_name(resource)
        try:
            files = sorted(d.iterdir())
        except FileNotFoundError:
            return {}
        return {
            urllib.parse.unquote(f.name[: -len(SUFFIX)]): f
            for f in files
            if f.name.endswith(SUFFIX)
        }

    def resources(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []


def read_lines(path: Path, offset: int = 0) -> tuple[list[bytes], int]:
    """Complete lines of `path` from byte `offset`, and the offset after the last of them."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    if end == 0:
        return [], offset
    return data[:end].splitlines(), offset + end
