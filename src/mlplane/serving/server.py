"""Run the model server: bind 127.0.0.1, serve until SIGTERM/SIGINT, drain, return.

`serve(...)` is the foreground entry point (`python -m mlplane.serving`, `mlplane serve local`);
`ModelServer` is the embeddable piece (start on a running loop, stop with a drain).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlplane.errors import PermanentError
from mlplane.serving.app import ModelApp, build_app
from mlplane.serving.openapi import DEFAULT_ENDPOINTS_SERVICE
from mlplane.serving.protocol import HttpConnection, Shared
from mlplane.serving.threads import DaemonThreadPool

log = logging.getLogger("mlplane.serving")

BIND_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class ServerSettings:
    max_body_bytes: int = 1 << 20
    drain_timeout_sec: float = 30.0
    # Longer than the GCP load balancer's 600 s backend keep-alive, so the LB closes first.
    keepalive_timeout_sec: float = 620.0
    request_timeout_sec: float = 30.0  # from a request's first byte to its last
    threads: int = 4  # for predictors that are not `inline`


class ModelServer:
    def __init__(self, app: ModelApp, settings: ServerSettings | None = None) -> None:
        self.app = app
        self.settings = settings or ServerSettings()
        self.shared: Shared | None = None
        self._server: asyncio.Server | None = None
        self._tick_handle: asyncio.TimerHandle | None = None

    async def start(self, port: int) -> int:
        """Listen on 127.0.0.1:`port` (0: any free port); returns the bound port."""
        loop = asyncio.get_running_loop()
        executor = DaemonThreadPool(self.settings.threads)
        shared = self.shared = Shared(self.app, executor, self.settings.max_body_bytes)
        self._tick()
        try:
            self._server = await loop.create_server(
                lambda: HttpConnection(shared), BIND_HOST, port, backlog=1024
            )
        except OSError as exc:
            self._cancel_tick()
            raise PermanentError(f"cannot listen on {BIND_HOST}:{port}: {exc.strerror}") from None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting; close idle connections; let in-flight requests finish (bounded)."""
        shared = self.shared
        if shared is None or self._server is None:
            return
        shared.draining = True
        self._server.close()
        for conn in list(shared.connections):
            conn.close_if_idle()
        if shared.connections:
            log.info("draining %d connection(s)", len(shared.connections))
            try:
                await asyncio.wait_for(shared.drained.wait(), self.settings.drain_timeout_sec)
            except TimeoutError:
                log.warning("drain timed out; closing %d connection(s)", len(shared.connections))
                for conn in list(shared.connections):
                    if conn.transport is not None:
                        conn.transport.abort()
        self._cancel_tick()
        shared.executor.shutdown(wait=False, cancel_futures=True)

    def _tick(self) -> None:
        """Once a second: refresh the Date header, close idle or stalled connections."""
        shared = self.shared
        assert shared is not None
        loop = asyncio.get_running_loop()
        shared.date = http_date(time.time()).encode()
        now = loop.time()
        s = self.settings
        for conn in list(shared.connections):
            if conn.busy:
                continue
            if conn.idle:
                if now - conn.last_active > s.keepalive_timeout_sec:
                    conn.close_if_idle()
            elif now - conn.request_started > s.request_timeout_sec:
                conn.timed_out()
        self._tick_handle = loop.call_later(1.0, self._tick)

    def _cancel_tick(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None


def http_date(timestamp: float) -> str:
    """RFC 9110 IMF-fixdate, independent of the process locale."""
    g = time.gmtime(timestamp)
    return (
        f"{_DAYS[g.tm_wday]}, {g.tm_mday:02d} {_MONTHS[g.tm_mon - 1]} {g.tm_year} "
        f"{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} GMT"
    )


async def run(
    app: ModelApp,
    port: int,
    settings: ServerSettings | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve `app` until SIGTERM or SIGINT (when on the main thread), then drain."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):  # before binding: a SIGTERM then still drains
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (ValueError, RuntimeError, NotImplementedError):
            pass  # not the main thread: the caller stops us by cancelling
    server = ModelServer(app, settings)
    try:
        bound = await server.start(port)
        (on_ready or (lambda p: announce(app, p)))(bound)
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await server.stop()


def announce(app: ModelApp, port: int) -> None:
    """The ready line; supervisors read the port from its first words."""
    a = app.artifact
    print(
        f"listening on {BIND_HOST}:{port} model={a.name} version={a.version} "
        f"base_path={app.base_path or '/'}",
        flush=True,
    )


def serve(
    artifact: Path | str,
    port: int = DEFAULT_PORT,
    base_path: str | None = None,
    *,
    service: str | None = None,
    endpoints_service: str = DEFAULT_ENDPOINTS_SERVICE,
    settings: ServerSettings | None = None,
    on_ready: Callable[[int], None] | None = None,
    aliases: tuple[str, ...] = (),
) -> None:
    """Load and verify `artifact`, then serve it on 127.0.0.1:`port` in the foreground.

    Returns after SIGTERM/SIGINT once in-flight requests are answered. Raises MlplaneError
    (ArtifactError, ConfigError, PermanentError when the port is taken) before binding
    anything if the model cannot be served. `on_ready(port)` defaults to printing
    `listening on 127.0.0.1:PORT ...`.
    """
    app = build_app(
        artifact,
        service=service,
        base_path=base_path,
        endpoints_service=endpoints_service,
        aliases=aliases,
    )
    asyncio.run(run(app, port, settings, on_ready))
