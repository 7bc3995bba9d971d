"""Start, find and stop a project's local agent (what `mlplane up`, `down`, `status` call).

`start_agent` is idempotent and race-safe: it holds `launch.lock` while it looks for a running
agent, launches one (detached: the agent is never the caller's child) and waits for its API;
a concurrent `up` waits on the lock and then finds the agent the first one started. The agent's
own `agent.lock` makes a second agent exit even if launched by other means.

`stop_agent` signals the agent by PID (SIGTERM: it stops every process it supervises, each
gracefully then with SIGKILL), waits, SIGKILLs it after the timeout, kills any process group
still listed in `children.json` (matched by PID and start time), and removes the resources the
agent recorded: `down` tears the project's local resources down, where any other end of the
agent (a kill, a reboot) leaves them for the next `up` to restore (docs/decisions/1600). Cloud
Run services are kept by `down` too (docs/decisions/1708): nothing else records their revisions.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlplane.apis.endpoints import Endpoints
from mlplane.errors import ConfigError, PermanentError

from .paths import AgentInfo, AgentPaths, read_info, read_pid
from .procfs import start_time

AGENT_MODULE = "mlplane.providers.local.agent"


class AgentStartFailed(PermanentError):
    """The agent did not come up; the message carries the end of its log."""


class AgentNotRunning(PermanentError):
    """No local agent answers for this project."""

    exit_code = 4


@dataclass(frozen=True)
class AgentHandle:
    paths: AgentPaths
    info: AgentInfo

    @property
    def base_url(self) -> str:
        return self.info.base_url

    @property
    def endpoints(self) -> Endpoints:
        """Where the agent serves Google's APIs (and its token endpoint)."""
        return Endpoints.agent(self.info.base_url)


@dataclass(frozen=True)
class UpResult:
    agent: AgentHandle
    started: bool  # False: it was already running


@dataclass(frozen=True)
class DownResult:
    pid: int | None  # None: no agent was running
    forced: bool = False  # it ignored SIGTERM and was killed
    leftovers: int = 0  # processes of a crashed agent killed afterwards


def pid_alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our child
    return start_time(pid) is not None


def _healthz(info: AgentInfo) -> dict[str, object] | None:
    conn = http.client.HTTPConnection("127.0.0.1", info.port, timeout=5.0)
    try:
        conn.request("GET", "/_mlplane/healthz")
        resp = conn.getresponse()
        data = json.loads(resp.read()) if resp.status == 200 else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    return data if isinstance(data, dict) else None


def find_agent(project_file: Path | str) -> AgentHandle | None:
    """The running agent of the project (its API answers with its PID), or None."""
    paths = AgentPaths.for_project(project_file)
    info = read_info(paths)
    if info is None or not pid_alive(info.pid):
        return None
    health = _healthz(info)
    return AgentHandle(paths, info) if health and health.get("pid") == info.pid else None


def require_agent(project_file: Path | str) -> AgentHandle:
    handle = find_agent(project_file)
    if handle is None:
        raise AgentNotRunning(
            f"no local agent is running for {Path(project_file).resolve()}: start it with "
            "`mlplane up`"
        )
    return handle


@contextlib.contextmanager
def _launch_lock(path: Path, timeout: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AgentStartFailed(f"another `mlplane up` holds {path}") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def start_agent(project_file: Path | str, timeout: float = 30.0) -> UpResult:
    paths = AgentPaths.for_project(project_file)
    if not paths.project_file.is_file():
        raise ConfigError(str(paths.project_file), "", "no such project file (run `mlplane init`)")
    paths.ensure()
    with _launch_lock(paths.launch_lock, timeout):
        running = find_agent(paths.project_file)
        if running is not None:
            return UpResult(running, started=False)
        paths.start_error.unlink(missing_ok=True)
        argv = [sys.executable, "-m", AGENT_MODULE, "--project", str(paths.project_file)]
        argv += ["--detach", "--log", str(paths.log)]
        launched = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        try:
            pid = int(launched.stdout.strip())
        except ValueError:
            raise AgentStartFailed(f"the agent did not start: {launched.stderr.strip()}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            handle = find_agent(paths.project_file)
            if handle is not None:
                return UpResult(handle, started=handle.info.pid == pid)
            if not pid_alive(pid):
                raise AgentStartFailed(_start_failure(paths))
            time.sleep(0.05)
        raise AgentStartFailed(f"the agent did not answer within {timeout:g}s:\n{_log_tail(paths)}")


def _start_failure(paths: AgentPaths) -> str:
    """Why the agent exited at start-up: its one-piece reason if it left one, else its log."""
    try:
        why = paths.start_error.read_text().strip()
    except OSError:
        why = ""
    if why:
        return f"the agent did not start: {why}"
    return f"the agent exited at start-up:\n{_log_tail(paths)}"


def _log_tail(paths: AgentPaths, lines: int = 15) -> str:
    try:
        return "\n".join(paths.log.read_text().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _is_agent(pid: int) -> bool:
    """Guard against a recycled PID: the process must be an agent of this module."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return AGENT_MODULE.encode() in cmdline


def stop_agent(project_file: Path | str, timeout: float = 20.0) -> DownResult:
    paths = AgentPaths.for_project(project_file)
    pid = read_pid(paths)
    if pid is None or not pid_alive(pid) or not _is_agent(pid):
        leftovers = _sweep(paths)
        return DownResult(None, leftovers=leftovers)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    forced = pid_alive(pid)
    if forced:
        os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.02)
    return DownResult(pid, forced=forced, leftovers=_sweep(paths))


def _sweep(paths: AgentPaths) -> int:
    """Kill what a dead agent left (its children died with it; what they started, whole
    process groups, did not), stop the data plane, forget the recorded resources."""
    from .agent.processes import sweep_recorded

    killed = sweep_recorded(paths.children)
    from .dataplane.files import DataPlaneFiles, stop_orphan

    killed += stop_orphan(DataPlaneFiles(paths.root))  # it outlives a killed agent by design
    for path in (paths.children, paths.info, paths.pid_file):
        path.unlink(missing_ok=True)
    for recorded in (paths.resources, paths.servicemanagement):
        shutil.rmtree(recorded, ignore_errors=True)
    return killed
