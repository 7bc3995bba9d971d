"""The agent's side of the control socket: start or adopt the data plane, send it versioned
configurations, poll what changed, stop it.

    dp = DataPlaneClient(state_dir)
    await dp.ensure()                  # adopt the running data plane, or start one
    errors = await dp.apply(config)    # {listener: "" or why it cannot listen}
    reply = await dp.poll()            # health transitions and loads since the last poll
    await dp.shutdown()                # drain, exit, wait for the process to be gone
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlplane.errors import MlplaneError

from .files import DataPlaneFiles, DataPlaneInfo, alive, read_info, start_time
from .protocol import MAX_LINE, DataPlaneConfig, PollReply, decode, encode

log = logging.getLogger(__name__)
START_TIMEOUT_SEC = 15.0


class DataPlaneError(MlplaneError):
    """The data plane could not be reached, started or configured."""


class DataPlaneClient:
    def __init__(self, state_dir: Path) -> None:
        self.files = DataPlaneFiles(state_dir)
        self.info: DataPlaneInfo | None = None
        self.adopted = False
        self.inherited: dict[str, int] = {}  # listeners an adopted data plane was running
        self.since = 0
        self.version = 0
        self._spawned = 0  # pid of the data plane this client started (it may still be starting)
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()
        # Long polls go over a connection of their own, so that they never hold up an apply.
        self._poller: DataPlaneClient | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def ensure(self) -> None:
        """Connect to the running data plane (adopting it, listeners and all), else start one."""
        if self._conn is not None and not self._conn[1].is_closing():
            return
        info = read_info(self.files)
        if info is not None and alive(info) and await self._connect():
            self.info, self.adopted = info, True
            hello = await self.call({"op": "hello"})
            self.version = int(hello.get("version", 0))
            self.inherited = {str(k): int(v) for k, v in hello.get("listeners", {}).items()}
            log.info("adopted data plane pid %d (config version %d)", info.pid, self.version)
            return
        await self._start()

    async def _start(self) -> None:
        src = str(Path(__file__).resolve().parents[4])  # the directory holding `mlplane`
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        argv = [sys.executable, "-m", "mlplane.providers.local.dataplane"]
        proc = await asyncio.create_subprocess_exec(
            *argv, "--dir", str(self.files.root), "--detach",
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, env=env,
        )  # fmt: skip
        out, _ = await proc.communicate()
        with contextlib.suppress(ValueError):
            self._spawned = int(out.decode().strip())
        deadline = time.monotonic() + START_TIMEOUT_SEC
        while time.monotonic() < deadline and self._starting():
            info = read_info(self.files)
            if info is not None and alive(info) and await self._connect():
                self.info, self.adopted, self.since = info, False, 0
                log.info("started data plane pid %d", info.pid)
                return
            await asyncio.sleep(0.02)
        raise DataPlaneError(
            f"the data plane (pid {out.decode().strip() or '?'}) did not open its control "
            f"socket within {START_TIMEOUT_SEC:g} s; see {self.files.log}"
        )

    def _starting(self) -> bool:
        """The data plane this client spawned still lives (it may not listen yet)."""
        return self._spawned > 0 and start_time(self._spawned) is not None

    async def _connect(self) -> bool:
        try:
            self._conn = await asyncio.open_unix_connection(
                self.files.socket_address(), limit=MAX_LINE
            )
        except OSError:
            self._conn = None
            return False
        return True

    def running(self) -> bool:
        """A data plane runs for this state directory (this client's, or one to adopt)."""
        info = self.info or read_info(self.files)
        return info is not None and alive(info)

    @property
    def in_use(self) -> bool:
        """This client adopted or started a data plane (whose shutdown is then its job)."""
        return self.info is not None or self._spawned > 0

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the data plane (it drains in-flight requests) and wait until it is gone; one
        this client spawned and that is still starting is waited for, then stopped."""
        info = self.info or read_info(self.files)
        deadline = time.monotonic() + START_TIMEOUT_SEC
        while (
            (info is None or not alive(info)) and self._starting() and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.02)
            info = read_info(self.files)
        with contextlib.suppress(DataPlaneError):
            if self._conn is None:
                await self._connect()
            if self._conn is not None:
                await self.call({"op": "shutdown"})
        self.close()
        deadline = time.monotonic() + timeout
        while info is not None and alive(info) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None
        if self._poller is not None:
            self._poller.close()
            self._poller = None

    # -- calls ---------------------------------------------------------------------------------

    async def call(self, msg: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            if self._conn is None:
                raise DataPlaneError("not connected to the data plane")
            reader, writer = self._conn
            try:
                writer.write(encode(msg))
                await writer.drain()
                line = await reader.readline()
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self.close()
                raise DataPlaneError(f"the data plane's control socket failed: {exc}") from None
            if not line:
                self.close()
                raise DataPlaneError("the data plane closed its control socket")
            reply = decode(line)
            if "error" in reply:
                raise DataPlaneError(f"the data plane refused {msg.get('op')}: {reply['error']}")
            return reply

    async def apply(self, config: DataPlaneConfig) -> dict[str, str]:
        self.version += 1
        config = replace(config, version=self.version)
        reply = await self.call({"op": "apply", "config": config.to_json()})
        listeners = reply.get("listeners", {})
        assert isinstance(listeners, dict)
        return {str(k): str(v) for k, v in listeners.items()}

    async def poll(self, wait: float = 0.0) -> PollReply:
        """What changed since the last poll; with `wait`, a long poll on its own connection
        that answers as soon as a replica's health changes (at most `wait` seconds later)."""
        msg = {"op": "poll", "since": self.since, "wait": wait}
        if wait > 0:
            if self._poller is None or self._poller._conn is None:
                poller = DataPlaneClient(self.files.root)
                if not await poller._connect():
                    raise DataPlaneError("cannot open a polling connection to the data plane")
                self._poller = poller
            doc = await self._poller.call(msg)
        else:
            doc = await self.call(msg)
        reply = PollReply.from_json(doc)
        self.since = reply.seq
        return reply
