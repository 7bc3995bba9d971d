"""Supervised processes: spawn in their own process group, stop by PID (SIGTERM to the group,
SIGKILL after a grace period), and a registry file of live children for crash cleanup.

Each child asks the kernel for SIGKILL when the agent dies (PR_SET_PDEATHSIG), so a `kill -9`
of the agent kills every process it started; what those started (a training job under its
runner) lives on in their process group. The next agent and `mlplane down` sweep
`children.json`: each recorded group is killed whole, also when its leader is gone
(`group_members`), and a recycled PID is never signalled (start times are compared).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlplane.providers.local.paths import write_atomic
from mlplane.providers.local.procfs import process_table, start_time
from mlplane.zygote import die_with

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessId:
    """A PID plus the process's start time (clock ticks since boot): immune to PID reuse."""

    pid: int
    start: int

    def alive(self) -> bool:
        return start_time(self.pid) == self.start


def die_with_parent() -> Callable[[], None]:
    """A `preexec_fn`: the child asks for SIGKILL when this process (its parent) dies, and
    leaves at once if it already has (between the fork and the request)."""
    return functools.partial(die_with, os.getpid())  # runs in the child between fork and exec


class ChildRegistry:
    """`children.json`: every live child, rewritten on each spawn and reap."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.live: dict[int, ProcessId] = {}

    def add(self, pid: ProcessId) -> None:
        self.live[pid.pid] = pid
        self._write()

    def remove(self, pid: int) -> None:
        if self.live.pop(pid, None) is not None:
            self._write()

    def _write(self) -> None:
        data = [{"pid": p.pid, "start": p.start} for p in self.live.values()]
        try:
            write_atomic(self.path, json.dumps(data), mode=0o600)
        except OSError as exc:  # a safety net only: never let it stop a process from stopping
            log.warning("cannot write %s: %s", self.path, exc)


def recorded_children(path: Path) -> list[ProcessId]:
    try:
        return [ProcessId(int(d["pid"]), int(d["start"])) for d in json.loads(path.read_text())]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def group_members(leader: ProcessId) -> list[ProcessId]:
    """The live processes of the process group and session `leader` started, found in /proc,
    whether or not the leader still lives. A PGID or SID is not handed out as a PID while a
    process still carries it, so members that started after the leader are the ones it (or they)
    started; if the leader's PID now names another process, the group is not ours: none."""
    table = process_table()
    own = table.get(leader.pid)
    if own is not None and own[2] != leader.start:
        return []  # the PID was recycled: whatever group it leads now is someone else's
    return [
        ProcessId(pid, start)
        for pid, (group, session, start) in sorted(table.items())
        if (group == leader.pid or session == leader.pid) and start >= leader.start
    ]


def kill_recorded_group(leader: ProcessId, sig: signal.Signals = signal.SIGKILL) -> int:
    """Signal every process of a recorded group, the leader gone or not; returns how many.
    SIGKILL rescans a few times, for members forked while the others were being killed."""
    signalled: set[int] = set()
    for _ in range(5 if sig == signal.SIGKILL else 1):
        fresh = [m for m in group_members(leader) if m.pid not in signalled]
        if not fresh:
            break
        for member in fresh:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(member.pid, sig)
            signalled.add(member.pid)
    return len(signalled)


def sweep_recorded(path: Path) -> int:
    """Kill every process group listed in `children.json` (a dead agent's); returns how many
    processes were signalled. The file is left for the caller to remove."""
    recorded = recorded_children(path)
    if not recorded and path.exists() and path.stat().st_size > 2:
        log.warning("%s cannot be read: the processes it listed are not stopped", path)
    return sum(kill_recorded_group(pid) for pid in recorded)


def kill_group(pid: ProcessId, sig: signal.Signals) -> bool:
    """Signal the process group led by `pid`, if that very process still lives."""
    if not pid.alive():
        return False
    try:
        os.killpg(pid.pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(pid.pid, sig)
    return True


class Supervised:
    """One running child process (an instance or a replica): a new process the agent spawned,
    or a child of a warm launcher (`adopt`); either way it leads its own process group."""

    def __init__(self, pid: ProcessId, exited: Awaitable[int], log_path: Path) -> None:
        self.id = pid
        self.log_path = log_path
        self._exited = asyncio.ensure_future(exited)

    @classmethod
    def adopt(
        cls, pid: int, exited: Awaitable[int], log_path: Path, registry: ChildRegistry
    ) -> Supervised:
        """Supervise a process another process forked for the agent (`exited`: its exit
        status, as that parent reports it); recorded in `registry` like a spawned one."""
        child = cls(ProcessId(pid, start_time(pid) or 0), exited, log_path)
        registry.add(child.id)
        return child

    @property
    def pid(self) -> int:
        return self.id.pid

    @property
    def returncode(self) -> int | None:
        done = self._exited.done() and not self._exited.cancelled()
        return self._exited.result() if done else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    async def stop(self, grace: float) -> int:
        """SIGTERM to its group, SIGKILL after `grace` seconds; returns the exit status."""
        if not self._exited.done():
            kill_group(self.id, signal.SIGTERM)
            try:
                return await asyncio.wait_for(asyncio.shield(self._exited), grace)
            except TimeoutError:
                log.warning("pid %d ignored SIGTERM for %.1fs: SIGKILL", self.pid, grace)
                kill_group(self.id, signal.SIGKILL)
        code = await asyncio.shield(self._exited)
        # Leftovers of its group (children it started). A PGID is not reused while the group has
        # members, so this reaches only processes the instance started.
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        return code


async def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    registry: ChildRegistry,
) -> Supervised:
    """Start `argv` in a new session (its own process group), output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
    pid = ProcessId(proc.pid, start_time(proc.pid) or 0)
    registry.add(pid)
    return Supervised(pid, proc.wait(), log_path)
