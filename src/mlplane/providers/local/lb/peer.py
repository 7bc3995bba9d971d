"""One TCP connection as an asyncio Protocol that is its own reader and writer.

Both sides of the proxy use it instead of asyncio streams: the buffer is ours to look at (a
pooled connection holding unread bytes is never reused; a slow client's partial head is seen
by the timeout sweeper), bytes that arrived are never hidden behind a later error, and the
common request needs no coroutine at all (see `client`). Coroutines read it through the same
calls as a StreamReader (`read`, `readexactly`, `readuntil`) and write through `write`/`drain`.
"""

from __future__ import annotations

import asyncio
from asyncio import IncompleteReadError, LimitOverrunError

HIGH_WATER = 256 * 1024
"""Buffered but unread bytes above which the connection stops reading (flow control)."""


class Peer(asyncio.Protocol):
    __slots__ = (
        "_drain_waiter",
        "_read_paused",
        "_waiter",
        "_write_paused",
        "buf",
        "closed",
        "eof",
        "limit",
        "transport",
    )

    def __init__(self, limit: int) -> None:
        self.limit = limit  # readuntil gives up past this many bytes without the separator
        self.buf = b""
        self.eof = False  # the peer closed its side (or the connection was lost)
        self.closed = False
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
        self.eof = self.closed = True
        self._wake()
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("connection lost"))

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
        """Up to `n` bytes; b"" once the peer closed and nothing is left."""
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

    def can_write_eof(self) -> bool:
        return not self.closed and self.transport.can_write_eof()

    def write_eof(self) -> None:
        self.transport.write_eof()
