"""The data plane's files, in the agent's state directory (`.mlplane/agent/`):

dataplane.lock   flock held by the running data plane for its whole life (one per project)
dataplane.json   its pid, process start time (clock ticks since boot) and start wall time
dataplane.sock   the control socket (Unix, mode 0600 in a 0700 directory)
dataplane.log    its log
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

_MAX_SUN_PATH = 100  # sockaddr_un holds 108 bytes


@dataclass(frozen=True)
class DataPlaneFiles:
    root: Path

    @property
    def lock(self) -> Path:
        return self.root / "dataplane.lock"

    @property
    def info(self) -> Path:
        return self.root / "dataplane.json"

    @property
    def socket(self) -> Path:
        return self.root / "dataplane.sock"

    @property
    def log(self) -> Path:
        return self.root / "dataplane.log"

    def socket_address(self) -> str:
        """The socket's path, short enough for bind/connect: a deep project directory is
        reached through /proc/self/fd/N (a descriptor of the directory kept open)."""
        path = str(self.socket)
        if len(path) < _MAX_SUN_PATH:
            return path
        fd = _dir_fds.get(self.root)
        if fd is None:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            _dir_fds[self.root] = fd
        return f"/proc/self/fd/{fd}/{self.socket.name}"


_dir_fds: dict[Path, int] = {}


@dataclass(frozen=True)
class DataPlaneInfo:
    pid: int
    start: int  # /proc/PID/stat start time: the pid cannot be a recycled one
    started_at: float


def read_info(files: DataPlaneFiles) -> DataPlaneInfo | None:
    try:
        d = json.loads(files.info.read_text())
        return DataPlaneInfo(int(d["pid"]), int(d["start"]), float(d["startedAt"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_time(pid: int) -> int | None:
    """Start time of a live, non-zombie process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(info: DataPlaneInfo) -> bool:
    return start_time(info.pid) == info.start


def remove_files(files: DataPlaneFiles) -> None:
    for path in (files.info, files.socket):
        with contextlib.suppress(OSError):
            path.unlink()


def stop_orphan(files: DataPlaneFiles, timeout: float = 5.0) -> bool:
    """Stop a data plane that no agent runs any more (`mlplane down` after the agent was
    killed): SIGTERM (it drains), SIGKILL after `timeout`. True when there was one."""
    info = read_info(files)
    if info is None or not alive(info):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(info) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(info):
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGKILL)
    remove_files(files)
    return True
