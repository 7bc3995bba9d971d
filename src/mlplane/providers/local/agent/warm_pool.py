"""The agent's side of a warm launcher (`mlplane.zygote`): start it, hand it a `python -m
MODULE ARGS` to fork, learn the child's PID and exit status. Two are kept: the build worker
(`mlplane.cli.warm_worker`, for build steps) and the replica launcher (`mlplane.serving.warm`,
for model-server replicas). What a launcher cannot take (it is starting, or died) runs cold, as
a new process; the caller starts the launcher again for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .processes import die_with_parent

log = logging.getLogger(__name__)
BUILD_WORKER = "mlplane.cli.warm_worker"  # runs `python -m mlplane ...` (build steps)
REPLICA_LAUNCHER = "mlplane.serving.warm"  # runs `python -m mlplane.serving ...` (replicas)


class WarmStep:
    """A workload running in a child of the launcher."""

    def __init__(self, pid: int, exited: asyncio.Future[int]) -> None:
        self.pid = pid
        self._exited = exited

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


class WarmWorker:
    """One launcher process (`launcher`, a module run with `python -m`) that forks the modules
    in `runs`."""

    def __init__(self, log_path: Path, launcher: str, runs: Sequence[str]) -> None:
        self.log_path = log_path
        self.launcher = launcher
        self.runs = frozenset(runs)
        self._proc: asyncio.subprocess.Process | None = None
        self._ready: asyncio.Future[int] | None = None
        self._pids: dict[str, asyncio.Future[int]] = {}
        self._exits: dict[str, asyncio.Future[int]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None

    async def start(self, env: Mapping[str, str]) -> None:
        """Start the launcher with `env` (no one's credentials: each child's environment is
        its request's, but /proc shows the launcher's); it imports in the background and
        `run` uses it once it is ready."""
        if self._proc is not None and self._proc.returncode is None:
            return
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as err:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.launcher,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=dict(env),
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        self._reader = loop.create_task(self._read(self._proc))

    @property
    def ready(self) -> bool:
        return (
            self._proc is not None
            and self._proc.returncode is None
            and self._ready is not None
            and self._ready.done()
            and not self._ready.cancelled()
            and self._ready.exception() is None
        )

    def takes(self, argv: Sequence[str]) -> str | None:
        """The module of `argv` if it is `python -m MODULE ...` (this interpreter) and this
        launcher runs MODULE; else None."""
        python_m = len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-m"
        return argv[2] if python_m and argv[2] in self.runs else None

    async def run(
        self, module: str, args: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path
    ) -> WarmStep | None:
        """Fork `python -m MODULE ARGS` from the launcher; None when it cannot take it."""
        if module not in self.runs or not self.ready or self._proc is None:
            return None
        if self._proc.stdin is None:
            return None
        loop = asyncio.get_running_loop()
        key = str(next(self._ids))
        self._pids[key], self._exits[key] = loop.create_future(), loop.create_future()
        request = {"id": key, "module": module, "args": list(args), "env": dict(env),
                   "cwd": str(cwd), "log": str(log_path)}  # fmt: skip
        try:
            self._proc.stdin.write((json.dumps(request) + "\n").encode())
            await self._proc.stdin.drain()
            pid = await asyncio.wait_for(asyncio.shield(self._pids[key]), 10.0)
            if pid <= 0:
                raise ConnectionError("the worker exited")
        except (OSError, TimeoutError, ConnectionError, asyncio.InvalidStateError) as exc:
            log.warning("%s failed to start %s (%s): it runs cold", self.launcher, module, exc)
            self._pids.pop(key, None)
            self._exits.pop(key, None)
            return None
        return WarmStep(pid, self._exits[key])

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while line := await proc.stdout.readline():
                msg = json.loads(line)
                if "ready" in msg and self._ready is not None and not self._ready.done():
                    self._ready.set_result(int(msg["ready"]))
                elif "pid" in msg and (f := self._pids.pop(str(msg["id"]), None)) is not None:
                    f.set_result(int(msg["pid"]))
                elif "exit" in msg and (f := self._exits.pop(str(msg["id"]), None)) is not None:
                    f.set_result(int(msg["exit"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("%s said something unreadable: %s", self.launcher, exc)
        finally:
            # The worker is gone: its children died with it (PDEATHSIG); say so to the waiters.
            for pending in (*self._pids.values(), *self._exits.values()):
                if not pending.done():
                    pending.set_result(-9)
            self._pids.clear()
            self._exits.clear()
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(RuntimeError(f"{self.launcher} exited"))
                self._ready.exception()  # retrieved: not an unhandled-exception warning

    async def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # the worker's signal to leave
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader
