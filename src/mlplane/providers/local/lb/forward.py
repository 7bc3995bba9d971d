"""Forward one request to a backend service: pick, send, relay the response, retry when safe.

Retry rule: a failed connect (nothing sent) is retried on another endpoint for any method. A
request that was sent but got no complete response back (a dead pooled connection, a replica that
died) is retried only when the method is idempotent and the body is still in memory (<= 64 KiB,
Content-Length framed). Nothing is retried once the client has seen a byte of the response.

The common case (small body, small Content-Length response) runs in two coroutine frames with
one read and one write on each side; everything else goes through `body.relay_*`.
"""

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
from .conn import IDLE, NONE, STREAM, UPSTREAM, ClientConn, Runtime
from .http import (
    HEAD_END,
    HttpError,
    RequestHead,
    ResponseHead,
    error_response,
    parse_response_head,
)
from .http import response_head as build_response_head
from .pool import EndpointState, ServiceState, UpstreamConn

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"})
SMALL_BODY = 64 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Failed(Exception):
    """An attempt failed before any response byte reached the client."""

    def __init__(self, kind: str, status: int, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.kind = kind  # a metrics.ERROR_KINDS entry
        self.status = status
        self.message = message
        self.sent = sent
        self.reused = False


class _Done(Exception):
    """The exchange ended early with a response already written (or the client gone)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def forward(
    rt: Runtime, cc: ClientConn, req: RequestHead, svc: ServiceState, t0: float
) -> bool:
    """Proxy one request and record it; returns whether the client connection stays open."""
    settings = rt.settings
    metrics = svc.metrics
    metrics.in_flight += 1
    status = 499
    try:
        cl = req.content_length
        streamed = cl < 0 or cl > SMALL_BODY
        payload = req.upstream_head(cc.extra)
        if cl > 0 and not streamed:
            if req.expect_continue:
                cc.writer.write(CONTINUE)
            cc.phase = IDLE
            cc.deadline = monotonic() + settings.client_idle_timeout_sec
            try:
                payload += await cc.reader.readexactly(cl)
            except (IncompleteReadError, OSError):
                return False
            cc.phase = NONE
        tried: list[EndpointState] = []
        failure: _Failed | None = None
        while len(tried) < settings.max_attempts:
            if svc.retired:  # removed by apply() while we were reading the body / retrying
                svc = rt.reroute(req) or svc
            now = monotonic()
            ep = svc.pick(tried, now)
            if ep is None:
                if failure is None or not failure.reused or tried.count(tried[-1]) > 1:
                    break
                ep = tried[-1]  # a stale pooled connection to the only endpoint: once more
            if tried:
                metrics.retries += 1
            tried.append(ep)
            ep.outstanding += 1
            conn: UpstreamConn | None = None
            try:
                conn = ep.take_idle(now, settings.upstream_idle_timeout_sec)
                reused = conn is not None
                if conn is None:
                    conn = await _connect(rt, svc, ep)
                cc.upstream = conn
                cc.timed_out = False
                cc.stream_timeout = svc.timeout
                cc.phase = UPSTREAM
                cc.deadline = now + svc.timeout
                if streamed:
                    await _send_streamed(rt, cc, req, conn, payload)
                else:
                    conn.writer.write(payload)
                # The response head: inline, this is the hot path.
                try:
                    data = await conn.reader.read(PIECE)
                except OSError:
                    data = b""
                end = data.find(HEAD_END)
                if end < 0:
                    data, end = await _read_head(rt, cc, conn, data)
                end += 4
                try:
                    resp = parse_response_head(data[:end])
                except HttpError as exc:
                    raise _protocol_error(conn, exc.message) from None
                rest = data[end:]
                if resp.status < 200:
                    resp, rest = await _skip_interim(rt, cc, conn, resp, rest)
                status = resp.status
                keep = req.keep_alive and not rt.closing
                if (
                    resp.content_length == len(rest)
                    and keep
                    and resp.verbatim
                    and req.version == 11
                ):
                    cc.writer.write(resp.raw + rest if rest else resp.raw)
                    reusable = resp.keep_alive
                    if cc.transport.get_write_buffer_size():
                        keep, reusable = await _drain_client(cc, keep, reusable)
                else:
                    keep, reusable = await _relay_body(rt, cc, req, svc, conn, resp, rest)
                ep.release(conn, reusable, monotonic(), settings.max_idle_per_endpoint)
                conn = None
                return keep
            except _Done as done:
                status = done.status
                return False
            except _Failed as exc:
                exc.reused = reused
                failure = exc
                metrics.errors[exc.kind] += 1
                if exc.kind == "connect":
                    ep.ejected_until = now + settings.eject_sec
                if exc.sent and not (
                    req.method in IDEMPOTENT and not streamed and exc.kind == "reset"
                ):
                    break
            finally:
                if conn is not None:
                    ep.release(conn, False, 0.0, 0)
                ep.outstanding -= 1
                cc.phase = NONE
                cc.upstream = None
        if failure is None:
            status, message = 503, f"no healthy endpoint for backend service '{svc.name}'"
        else:
            status, message = failure.status, failure.message
        keep = req.keep_alive and not streamed and not rt.closing
        cc.writer.write(error_response(status, message, keep_alive=keep))
        return keep
    finally:
        metrics.in_flight -= 1
        metrics.observe(status, monotonic() - t0)


async def _connect(rt: Runtime, svc: ServiceState, ep: EndpointState) -> UpstreamConn:
    settings = rt.settings
    try:
        return await ep.connect(settings.connect_timeout_sec, settings.max_header_bytes)
    except (OSError, TimeoutError) as exc:
        timed_out = isinstance(exc, TimeoutError)
        why = "timed out" if timed_out else (exc.strerror or str(exc))
        message = f"cannot connect to endpoint {ep.address} of backend service '{svc.name}': {why}"
        raise _Failed("connect", 504 if timed_out else 502, message, sent=False) from None


async def _send_streamed(
    rt: Runtime, cc: ClientConn, req: RequestHead, conn: UpstreamConn, head: bytes
) -> None:
    """Relay a chunked or large request body as it arrives (nothing can be retried after)."""
    if req.expect_continue:
        cc.writer.write(CONTINUE)
    cc.phase = STREAM
    limit = rt.settings.max_request_body_bytes
    try:
        if req.chunked:
            await relay_chunked(cc.reader, conn.writer, cc.touch, first=head, limit=limit)
        else:
            await relay_length(cc.reader, conn.writer, req.content_length, cc.touch, first=head)
    except PeerGone as exc:
        if exc.side == SOURCE:
            raise _Done(499) from None
        raise _upstream_gone(cc, conn, "closed the connection while receiving the body") from None
    except BodyTooLarge:
        cc.writer.write(error_response(413, f"request body exceeds {limit} bytes"))
        raise _Done(413) from None
    except HttpError as exc:
        cc.writer.write(error_response(exc.status, exc.message))
        raise _Done(exc.status) from None
    cc.phase = UPSTREAM
    cc.deadline = monotonic() + cc.stream_timeout


def _upstream_gone(cc: ClientConn, conn: UpstreamConn, what: str) -> _Failed:
    where = f"endpoint {conn.endpoint.address}"
    if cc.timed_out:
        return _Failed("timeout", 504, f"{where} did not respond within {cc.stream_timeout:g} s")
    return _Failed("reset", 502, f"{where} {what}")


def _protocol_error(conn: UpstreamConn, why: object) -> _Failed:
    return _Failed(
        "protocol", 502, f"endpoint {conn.endpoint.address} sent an invalid response: {why}"
    )


async def _read_head(
    rt: Runtime, cc: ClientConn, conn: UpstreamConn, buf: bytes
) -> tuple[bytes, int]:
    """Read until the end of a response head; returns (bytes read, index of the CRLFCRLF)."""
    limit = rt.settings.max_header_bytes
    while True:
        end = buf.find(HEAD_END)
        if end >= 0:
            return buf, end
        if len(buf) > limit:
            raise _protocol_error(conn, "response head too large")
        try:
            data = await conn.reader.read(PIECE)
        except OSError:
            data = b""
        if not data:
            raise _upstream_gone(cc, conn, "closed the connection before responding")
        buf += data


async def _skip_interim(
    rt: Runtime, cc: ClientConn, conn: UpstreamConn, resp: ResponseHead, rest: bytes
) -> tuple[ResponseHead, bytes]:
    """Drop 1xx interim responses (the proxy answers Expect itself); 101 is refused."""
    while resp.status < 200:
        if resp.status == 101:
            raise _protocol_error(conn, "protocol upgrades are not supported")
        rest, end = await _read_head(rt, cc, conn, rest)
        try:
            resp = parse_response_head(rest[: end + 4])
        except HttpError as exc:
            raise _protocol_error(conn, exc.message) from None
        rest = rest[end + 4 :]
    return resp, rest


async def _drain_client(cc: ClientConn, keep: bool, reusable: bool) -> tuple[bool, bool]:
    cc.phase = STREAM
    cc.touch()
    try:
        await cc.writer.drain()
    except OSError:
        return False, reusable
    return keep, reusable


async def _relay_body(
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
    up = conn.reader
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
                raise _upstream_gone(cc, conn, "closed the connection mid-response") from None
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
        return await _drain_client(cc, keep, reusable)
    return keep, reusable
