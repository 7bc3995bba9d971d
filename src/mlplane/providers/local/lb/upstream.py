"""One connection to an endpoint (a `Peer`). A pooled connection that received anything while
idle (e.g. a second response that a lenient endpoint produced for a request smuggled inside a
body) is closed, never reused. When the endpoint resets the connection while we write (it
answered early, e.g. a 413 to a body it will not read), what it sent before is still read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from .peer import HIGH_WATER, Peer

if TYPE_CHECKING:
    from .pool import EndpointState


class UpstreamConn(Peer):
    __slots__ = ("endpoint", "idle_since", "on_data")

    def __init__(self, endpoint: EndpointState, limit: int) -> None:
        super().__init__(limit)
        self.endpoint = endpoint
        self.idle_since = 0.0
        # Set while a client drives this exchange by callbacks (no coroutine): called after
        # each arrival, end of stream or loss.
        self.on_data: Callable[[], None] | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.on_data is not None:
            self.on_data()

    def eof_received(self) -> bool:
        super().eof_received()
        if self.on_data is not None:
            self.on_data()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self.eof:
            self._salvage()
        super().connection_lost(exc)
        if self.on_data is not None:
            self.on_data()

    def answered(self) -> bool:
        """While we send a body: has the endpoint said anything (or closed)? Reads what the
        kernel holds first, so an early answer is seen before a write could meet its reset."""
        if not self.buf and not self.eof:
            self._salvage()
        return bool(self.buf) or self.eof

    def _salvage(self) -> None:
        """Read what the kernel holds for this connection now (non-blocking): after a reset
        met while writing, what the endpoint sent before it is still there."""
        sock = self.transport.get_extra_info("socket")
        fd = sock.fileno() if sock is not None else -1
        if fd < 0:
            return
        with contextlib.suppress(OSError):
            while data := os.read(fd, 65536):
                self.buf += data
                if len(self.buf) > HIGH_WATER:
                    break

    def usable(self) -> bool:
        """Can carry another request: open, and holding no byte nobody asked for."""
        return not (self.eof or self.buf or self.transport.is_closing())


async def open_upstream(endpoint: EndpointState, timeout: float, limit: int) -> UpstreamConn:
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: UpstreamConn(endpoint, limit), endpoint.host, endpoint.port),
        timeout,
    )
    return conn
