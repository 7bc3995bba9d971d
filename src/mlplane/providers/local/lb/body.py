"""Relay a message body from one stream to another, piece by piece, never buffering it whole.

Failures say which side broke: `PeerGone(SOURCE)` when reading, `PeerGone(SINK)` when the
destination's connection is lost while we wait for it to drain.
"""

from __future__ import annotations

from asyncio import IncompleteReadError, LimitOverrunError
from collections.abc import Callable
from typing import Protocol

from .http import CRLF, HttpError, check_line, chunk_size

PIECE = 64 * 1024
SOURCE = "source"
SINK = "sink"


class Source(Protocol):
    async def read(self, n: int) -> bytes: ...
    async def readuntil(self, separator: bytes) -> bytes: ...
    async def readexactly(self, n: int) -> bytes: ...


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...


class Prefixed:
    """A reader that first yields `buf` (bytes already read off `reader`), then the stream.

    Once wrapped, read only through this object; `buf` holds what was read but not consumed.
    """

    __slots__ = ("buf", "limit", "reader")

    def __init__(self, buf: bytes, reader: Source, limit: int = PIECE) -> None:
        self.buf = buf
        self.reader = reader
        self.limit = limit

    async def _more(self) -> None:
        data = await self.reader.read(PIECE)
        if not data:
            raise IncompleteReadError(self.buf, None)
        self.buf += data

    async def read(self, n: int) -> bytes:
        if not self.buf:
            return await self.reader.read(n)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    async def readuntil(self, separator: bytes) -> bytes:
        while (i := self.buf.find(separator)) < 0:
            if len(self.buf) > self.limit:
                raise LimitOverrunError("separator not found within the limit", len(self.buf))
            await self._more()
        end = i + len(separator)
        data, self.buf = self.buf[:end], self.buf[end:]
        return data

    async def readexactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            await self._more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


class PeerGone(Exception):
    def __init__(self, side: str) -> None:
        super().__init__(side)
        self.side = side


class BodyTooLarge(Exception):
    pass


async def _drain(dst: Sink) -> None:
    try:
        await dst.drain()
    except OSError:
        raise PeerGone(SINK) from None


async def _read(src: Source, n: int) -> bytes:
    try:
        data = await src.read(n)
    except OSError:
        raise PeerGone(SOURCE) from None
    if not data:
        raise PeerGone(SOURCE)
    return data


async def _readline(src: Source) -> bytes:
    try:
        return await src.readuntil(CRLF)
    except (IncompleteReadError, OSError):
        raise PeerGone(SOURCE) from None
    except LimitOverrunError:
        raise HttpError(400, "chunk line too long") from None


async def relay_length(
    src: Source,
    dst: Sink,
    n: int,
    touch: Callable[[], None],
    first: bytes = b"",
    stop: Callable[[], bool] | None = None,
) -> None:
    """Copy exactly `n` bytes; `first` (e.g. a message head) is sent with the first piece.
    `stop()` true between pieces ends the copy as if the destination were gone."""
    while n > 0:
        if stop is not None and stop():
            raise PeerGone(SINK)
        touch()
        data = await _read(src, min(n, PIECE))
        n -= len(data)
        dst.write(first + data if first else data)
        first = b""
        await _drain(dst)
    if first:
        dst.write(first)
        await _drain(dst)


async def relay_until_eof(
    src: Source, dst: Sink, touch: Callable[[], None], first: bytes = b""
) -> None:
    """Copy until the source closes (a close-delimited response body)."""
    if first:
        dst.write(first)
    while True:
        touch()
        try:
            data = await src.read(PIECE)
        except OSError:
            raise PeerGone(SOURCE) from None
        if not data:
            return
        dst.write(data)
        await _drain(dst)


async def relay_chunked(
    src: Source,
    dst: Sink,
    touch: Callable[[], None],
    *,
    first: bytes = b"",
    dechunk: bool = False,
    limit: int = -1,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Copy a chunked body, keeping its framing (or stripping it when `dechunk`).

    Raises BodyTooLarge once more than `limit` data bytes have passed (when limit >= 0).
    """
    total = 0
    pending = first
    while True:
        if stop is not None and stop():
            raise PeerGone(SINK)
        touch()
        line = await _readline(src)
        size = chunk_size(line)
        if size == 0:
            trailer = b"" if dechunk else line
            while True:  # trailer section up to the empty line
                tline = await _readline(src)
                check_line(tline)
                if not dechunk:
                    trailer += tline
                if tline == CRLF:
                    break
            dst.write(pending + trailer)
            await _drain(dst)
            return
        total += size
        if 0 <= limit < total:
            raise BodyTooLarge()
        if not dechunk:
            pending += line
        remaining = size
        while remaining > 0:
            data = await _read(src, min(remaining, PIECE))
            remaining -= len(data)
            if not remaining:  # the chunk's CRLF goes out with its last piece
                try:
                    end = await src.readexactly(2)
                except (IncompleteReadError, OSError):
                    raise PeerGone(SOURCE) from None
                if end != CRLF:
                    raise HttpError(400, "chunk data not followed by CRLF")
                if not dechunk:
                    data += CRLF
            dst.write(pending + data if pending else data)
            pending = b""
            touch()
            await _drain(dst)
