"""The supervised haproxy: its files, `haproxy -c`, start in master-worker mode, reload
(SIGUSR2: the master re-reads the configuration and starts a new worker with the listening
sockets; the old worker finishes its requests), restart after a crash, stop by PID.

The master is this data plane's child with a parent-death signal (SIGUSR1, a soft stop): a
data plane killed outright does not leave haproxy holding the ports; one that a data plane
left anyway is found by `haproxy.json` (pid and start time) and stopped by the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from mlplane.errors import ConfigError
from mlplane.providers.local.paths import write_atomic

from ..files import start_time
from .runtime import RuntimeApiError, worker_pid

log = logging.getLogger(__name__)
READY_SEC = 10.0
_PR_SET_PDEATHSIG = 1
_MAX_SUN_PATH = 100


class HaproxyMissing(ConfigError):
    def __init__(self) -> None:
        super().__init__(
            "mlplane.toml",
            "local.data_plane",
            "'haproxy' is selected but haproxy is not installed (apt-get install -y haproxy, "
            'or data_plane = "python")',
        )


def find_haproxy() -> str | None:
    found = shutil.which("haproxy")
    if found:
        return found
    return "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None


def _pdeathsig() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGUSR1, 0, 0, 0)


class HaproxyProcess:
    def __init__(self, root: Path) -> None:
        binary = find_haproxy()
        if binary is None:
            raise HaproxyMissing()
        self.binary = binary
        self.root = root
        self.cfg = root / "haproxy.cfg"
        self.info = root / "haproxy.json"
        self.log = root / "haproxy.log"
        sock = root / "haproxy.sock"
        if len(str(sock)) >= _MAX_SUN_PATH:  # haproxy binds it itself: no /proc/self/fd trick
            digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
            short = Path(tempfile.gettempdir()) / f"mlplane-haproxy-{os.getuid()}-{digest}"
            short.mkdir(mode=0o700, exist_ok=True)
            sock = short / "haproxy.sock"
        self.socket = str(sock)
        self.proc: subprocess.Popen[bytes] | None = None
        self.worker = 0

    async def check(self, text: str) -> None:
        """`haproxy -c` on `text`; ConfigError with haproxy's first alert when it refuses."""
        candidate = self.root / "haproxy.cfg.new"
        write_atomic(candidate, text, mode=0o600)
        proc = await asyncio.create_subprocess_exec(
            self.binary, "-c", "-q", "-f", str(candidate),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            lines = [x for x in out.decode(errors="replace").splitlines() if "ALERT" in x]
            why = (lines or out.decode(errors="replace").splitlines() or ["?"])[0]
            raise ConfigError("haproxy data plane", "haproxy -c", why.strip())
        candidate.replace(self.cfg)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self) -> None:
        stop_left(self.info)
        with contextlib.suppress(OSError):
            os.unlink(self.socket)
        out = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.proc = subprocess.Popen(
                [self.binary, "-W", "-db", "-f", str(self.cfg)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                preexec_fn=_pdeathsig, cwd=self.root,
            )  # fmt: skip
        finally:
            os.close(out)
        pid = self.proc.pid
        info = {"pid": pid, "start": start_time(pid) or 0}
        write_atomic(self.info, json.dumps(info), mode=0o644)
        self.worker = await self._new_worker(0)
        log.info("haproxy master pid %d, worker pid %d", pid, self.worker)

    async def reload(self) -> None:
        """Re-read the configuration; returns once the new worker answers."""
        assert self.proc is not None
        before = self.worker
        self.proc.send_signal(signal.SIGUSR2)
        self.worker = await self._new_worker(before)
        log.info("haproxy reloaded: worker pid %d (was %d)", self.worker, before)

    async def _new_worker(self, old: int) -> int:
        deadline = time.monotonic() + READY_SEC
        while time.monotonic() < deadline:
            if not self.running():
                raise ConfigError("haproxy data plane", "start", f"haproxy exited; see {self.log}")
            with contextlib.suppress(RuntimeApiError, ValueError):
                pid = await worker_pid(self.socket)
                if pid != old:
                    return pid
            await asyncio.sleep(0.01)
        why = f"no new haproxy worker in {READY_SEC:g} s; see {self.log}"
        raise ConfigError("haproxy data plane", "start", why)

    async def stop(self, drain_sec: float) -> None:
        """Soft stop (listeners close, requests in flight finish), SIGKILL after `drain_sec`+1."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + drain_sec + 1.0
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)
        self.info.unlink(missing_ok=True)


def stop_left(info_path: Path, timeout: float = 5.0) -> bool:
    """Stop a haproxy master a previous data plane left (matched by pid and start time)."""
    try:
        d = json.loads(info_path.read_text())
        pid, start = int(d["pid"]), int(d["start"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if start_time(pid) != start:
        info_path.unlink(missing_ok=True)
        return False
    log.warning("stopping haproxy pid %d left by a previous data plane", pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while start_time(pid) == start and time.monotonic() < deadline:
        time.sleep(0.02)
    if start_time(pid) == start:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    info_path.unlink(missing_ok=True)
    return True
