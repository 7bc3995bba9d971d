"""One connection to an endpoint: an asyncio Protocol that is its own reader and writer.

It replaces asyncio streams on the upstream side for two reasons. Bytes that arrived are never
hidden behind an error: after the endpoint answered early (a 413 to a body it will not read) and
reset the connection, the answer can still be read. And the proxy can see what an idle pooled
connection holds: a connection with unread bytes (e.g. a second response that a lenient
endpoint produced for a request smuggled inside a body) is closed, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from asyncio import IncompleteReadError, LimitOverrunError
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pool import EndpointState

HIGH_WATER = 256 * 1024
"""Buffered but unread bytes above which the connection stops reading (flow control)."""


class UpstreamConn(asyncio.Protocol):
    __slots__ = (
        "_drain_waiter",
        "_read_paused",
        "_waiter",
        "_write_paused",
        "buf",
        "closed",
        "endpoint",
        "eof",
        "idle_since",
        "limit",
        "transport",
    )

    def __init__(self, endpoint: EndpointState, limit: int) -> None:
        self.endpoint = endpoint
        self.limit = limit  # readuntil gives up past this many bytes without the separator
        self.buf = b""
        self.eof = False  # the endpoint closed (or the connection was lost)
        self.closed = False
        self.idle_since = 0.0
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False

    # -- protocol callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        if len(self.buf) > HIGH_WATER and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self.eof:
            self._salvage()
        self.eof = self.closed = True
        self._wake()
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("connection lost"))

    def _salvage(self) -> None:
        """The connection broke while we wrote (the endpoint answered early, e.g. 413, and reset
        the connection): the kernel still holds what it sent before the reset. Read it before
        the transport closes the socket, so that the answer is not lost."""
        sock = self.transport.get_extra_info("socket")
        fd = sock.fileno() if sock is not None else -1
        if fd < 0:
            return
        with contextlib.suppress(OSError):
            while data := os.read(fd, 65536):
                self.buf += data
                if len(self.buf) > HIGH_WATER:
                    break

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    # -- reading (returns what arrived before any close or error) -------------------------------

    def _take(self, n: int) -> bytes:
        buf = self.buf
        if len(buf) <= n:
            self.buf = b""
            return buf
        self.buf = buf[n:]
        return buf[:n]

    async def read(self, n: int) -> bytes:
        """Up to `n` bytes; b"" once the endpoint closed and nothing is left."""
        while not self.buf:
            if self.eof:
                return b""
            await self._wait()
        return self._take(n)

    async def readexactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.eof:
                partial, self.buf = self.buf, b""
                raise IncompleteReadError(partial, n)
            await self._wait()
        return self._take(n)

    async def readuntil(self, separator: bytes) -> bytes:
        while (i := self.buf.find(separator)) < 0:
            if len(self.buf) > self.limit:
                raise LimitOverrunError("separator not found within the limit", len(self.buf))
            if self.eof:
                partial, self.buf = self.buf, b""
                raise IncompleteReadError(partial, None)
            await self._wait()
        return self._take(i + len(separator))

    # -- writing -------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("connection lost")
        if self._write_paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter

    # -- pooling -------------------------------------------------------------------------------

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
