"""The parts of an upstream exchange off the hot path: streamed request bodies, interim (1xx)
responses, response heads or bodies that take more than one read, and relaying a response whose
framing must change (HEAD, 204/304, chunked to an HTTP/1.0 client, close-delimited)."""

from __future__ import annotations

from asyncio import IncompleteReadError
from time import monotonic

from .body import (
    PIECE,
    SOURCE,
    BodyTooLarge,
    PeerGone,
    Prefixed,
    relay_chunked,
    relay_length,
    relay_until_eof,
)
from .conn import STREAM, UPSTREAM, ClientConn, Runtime
from .http import HEAD_END, HttpError, RequestHead
from .pool import ServiceState
from .response import ResponseHead, error_response, parse_response_head
from .response import response_head as build_response_head
from .upstream import UpstreamConn

SMALL_BODY = 64 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Failed(Exception):
    """An attempt failed before any response byte reached the client."""

    def __init__(self, kind: str, status: int, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.kind = kind  # a metrics.ERROR_KINDS entry
        self.status = status
        self.message = message
        self.sent = sent
        self.reused = False


class Done(Exception):
    """The exchange ended early with a response already written (or the client gone)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def send_streamed(
    rt: Runtime, cc: ClientConn, req: RequestHead, conn: UpstreamConn, head: bytes
) -> None:
    """Relay a chunked or large request body as it arrives (nothing can be retried after)."""
    if req.expect_continue:
        cc.writer.write(CONTINUE)
    cc.phase = STREAM
    limit = rt.settings.max_request_body_bytes
    try:
        if req.chunked:
            await relay_chunked(
                cc.reader, conn, cc.touch, first=head, limit=limit, stop=conn.answered
            )
        else:
            await relay_length(
                cc.reader, conn, req.content_length, cc.touch, first=head, stop=conn.answered
            )
    except PeerGone as exc:
        if exc.side == SOURCE:
            raise Done(499) from None
        # The endpoint stopped reading the body: it may have answered early (e.g. 413), so
        # relay its answer if there is one; the client connection closes after it.
        cc.must_close = True
    except BodyTooLarge:
        cc.writer.write(error_response(413, f"request body exceeds {limit} bytes"))
        raise Done(413) from None
    except HttpError as exc:
        cc.writer.write(error_response(exc.status, exc.message))
        raise Done(exc.status) from None
    cc.phase = UPSTREAM
    cc.deadline = monotonic() + cc.stream_timeout


def upstream_gone(cc: ClientConn, conn: UpstreamConn, what: str) -> Failed:
    where = f"endpoint {conn.endpoint.address}"
    if cc.timed_out:
        return Failed("timeout", 504, f"{where} did not respond within {cc.stream_timeout:g} s")
    return Failed("reset", 502, f"{where} {what}")


def protocol_error(conn: UpstreamConn, why: object) -> Failed:
    return Failed(
        "protocol", 502, f"endpoint {conn.endpoint.address} sent an invalid response: {why}"
    )


async def read_head(
    rt: Runtime, cc: ClientConn, conn: UpstreamConn, buf: bytes
) -> tuple[bytes, int]:
    """Read until the end of a response head; returns (bytes read, index of the CRLFCRLF)."""
    limit = rt.settings.max_header_bytes
    while True:
        end = buf.find(HEAD_END)
        if end >= 0:
            return buf, end
        if len(buf) > limit:
            raise protocol_error(conn, "response head too large")
        try:
            data = await conn.read(PIECE)
        except OSError:
            data = b""
        if not data:
            raise upstream_gone(cc, conn, "closed the connection before responding")
        buf += data


async def skip_interim(
    rt: Runtime, cc: ClientConn, conn: UpstreamConn, resp: ResponseHead, rest: bytes
) -> tuple[ResponseHead, bytes]:
    """Drop 1xx interim responses (the proxy answers Expect itself); 101 is refused."""
    while resp.status < 200:
        if resp.status == 101:
            raise protocol_error(conn, "protocol upgrades are not supported")
        rest, end = await read_head(rt, cc, conn, rest)
        try:
            resp = parse_response_head(rest[: end + 4])
        except HttpError as exc:
            raise protocol_error(conn, exc.message) from None
        rest = rest[end + 4 :]
    return resp, rest


async def drain_client(cc: ClientConn, keep: bool, reusable: bool) -> tuple[bool, bool]:
    cc.phase = STREAM
    cc.touch()
    try:
        await cc.writer.drain()
    except OSError:
        return False, reusable
    return keep, reusable


async def relay_body(
    rt: Runtime,
    cc: ClientConn,
    req: RequestHead,
    svc: ServiceState,
    conn: UpstreamConn,
    resp: ResponseHead,
    buf: bytes,
) -> tuple[bool, bool]:
    """Everything but the common case: framing changes, bodies not yet (fully) read, streaming.
    Returns (keep the client connection, upstream connection reusable)."""
    up = conn
    status = resp.status
    keep = req.keep_alive and not rt.closing
    reusable = resp.keep_alive
    no_body = req.method == b"HEAD" or status == 204 or status == 304
    cl = resp.content_length
    chunked = resp.chunked and not no_body
    dechunk = chunked and req.version == 10
    if dechunk or (not no_body and not chunked and cl < 0):
        keep = False
        reusable = reusable and chunked
    connection = None if keep and req.version == 11 else (b"keep-alive" if keep else b"close")
    if connection is None and resp.verbatim:
        out = resp.raw
    else:
        out = build_response_head(resp, chunked=chunked and not dechunk, connection=connection)
    writer = cc.writer
    if no_body:
        reusable = reusable and not buf
        writer.write(out)
    elif not chunked and cl >= 0 and (len(buf) >= cl or cl <= SMALL_BODY):
        if len(buf) < cl:
            try:
                buf += await up.readexactly(cl - len(buf))
            except (IncompleteReadError, OSError):
                raise upstream_gone(cc, conn, "closed the connection mid-response") from None
        elif len(buf) > cl:
            reusable, buf = False, buf[:cl]
        writer.write(out + buf if buf else out)
    else:
        cc.phase = STREAM
        cc.touch()
        src = Prefixed(buf, up)
        try:
            if chunked:
                await relay_chunked(src, writer, cc.touch, first=out, dechunk=dechunk)
            elif cl >= 0:
                await relay_length(src, writer, cl, cc.touch, first=out)
            else:
                await relay_until_eof(src, writer, cc.touch, first=out)
        except (PeerGone, HttpError) as exc:
            # Mid-response: the client cannot be told; abort so it sees a truncated message.
            if not isinstance(exc, PeerGone) or exc.side == SOURCE:
                svc.metrics.errors["timeout" if cc.timed_out else "reset"] += 1
            cc.transport.abort()
            return False, False
        reusable = reusable and not src.buf
    if cc.transport.get_write_buffer_size():
        return await drain_client(cc, keep, reusable)
    return keep, reusable
