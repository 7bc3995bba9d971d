"""Forward one request to a backend service: pick, send, relay the response, retry when safe.

Retry rule: a failed connect (nothing sent) is retried on another endpoint for any method. A
request that was sent but got no complete response back (a dead pooled connection, a replica that
died) is retried only when the method is idempotent and the body is still in memory (<= 64 KiB,
Content-Length framed). Nothing is retried once the client has seen a byte of the response.

The common case (small body, small Content-Length response) runs in two coroutine frames with
one read and one write on each side; everything else is in `exchange`.
"""

from __future__ import annotations

from asyncio import IncompleteReadError
from time import monotonic

from .body import PIECE
from .conn import IDLE, NONE, UPSTREAM, ClientConn, Runtime
from .exchange import (
    CONTINUE,
    SMALL_BODY,
    Done,
    Failed,
    drain_client,
    protocol_error,
    read_head,
    relay_body,
    send_streamed,
    skip_interim,
)
from .http import HEAD_END, HttpError, RequestHead
from .pool import EndpointState, ServiceState
from .response import error_response, parse_response_head
from .upstream import UpstreamConn

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"})


async def forward(
    rt: Runtime,
    cc: ClientConn,
    req: RequestHead,
    svc: ServiceState,
    t0: float,
    body: bytes | None = None,
    sent: tuple[EndpointState, UpstreamConn] | None = None,
    picked: EndpointState | None = None,
) -> bool:
    """Proxy one request and record it; returns whether the client connection stays open.

    `body`: the request body, already read. `sent`: the request was already written on this
    pooled connection by the callback path (`client`), which counted it in flight and as
    outstanding on the endpoint; carry on from its response. `picked`: the endpoint the
    callback path chose (it had no idle connection): the first attempt goes there."""
    settings = rt.settings
    metrics = svc.metrics
    if sent is None:
        metrics.in_flight += 1
        metrics.start_sum += t0
    status = 499
    cc.must_close = False
    try:
        cl = req.content_length
        streamed = cl < 0 or cl > SMALL_BODY
        payload = req.upstream_head(cc.extra)
        if body is not None:
            payload += body
        elif cl > 0 and not streamed:
            if req.expect_continue:
                cc.writer.write(CONTINUE)
            cc.phase = IDLE
            cc.deadline = monotonic() + settings.client_header_timeout_sec
            try:
                payload += await cc.reader.readexactly(cl)
            except (IncompleteReadError, OSError):
                return False
            cc.phase = NONE
        tried: list[EndpointState] = []
        failure: Failed | None = None
        while len(tried) < settings.max_attempts:
            now = monotonic()
            conn: UpstreamConn | None = None
            if sent is not None:
                (ep, conn), sent, reused = sent, None, True
                tried.append(ep)
            else:
                if svc.retired:  # removed by apply() while we read the body / retrying
                    svc = rt.reroute(req) or svc
                choice, picked = picked or svc.pick(tried, now), None
                if choice is None:
                    if failure is None or not failure.reused or tried.count(tried[-1]) > 1:
                        break
                    choice = tried[-1]  # a stale pooled connection to the only endpoint: again
                ep = choice
                if tried:
                    metrics.retries += 1
                tried.append(ep)
                ep.outstanding += 1
            try:
                if conn is None:
                    conn = ep.take_idle(now, settings.upstream_idle_timeout_sec)
                    reused = conn is not None
                    if conn is None:
                        conn = await _connect(rt, svc, ep)
                        now = monotonic()
                    cc.upstream = conn
                    cc.timed_out = False
                    cc.stream_timeout = svc.timeout
                    cc.phase = UPSTREAM
                    cc.deadline = now + svc.timeout
                    if streamed:
                        await send_streamed(rt, cc, req, conn, payload)
                    else:
                        conn.write(payload)
                # The response head: inline, this is the hot path.
                try:
                    data = await conn.read(PIECE)
                except OSError:
                    data = b""
                end = data.find(HEAD_END)
                if end < 0:
                    data, end = await read_head(rt, cc, conn, data)
                end += 4
                try:
                    resp = parse_response_head(data[:end])
                except HttpError as exc:
                    raise protocol_error(conn, exc.message) from None
                rest = data[end:]
                if resp.status < 200:
                    resp, rest = await skip_interim(rt, cc, conn, resp, rest)
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
                        keep, reusable = await drain_client(cc, keep, reusable)
                else:
                    keep, reusable = await relay_body(rt, cc, req, svc, conn, resp, rest)
                if cc.must_close:
                    keep = reusable = False
                ep.release(conn, reusable, monotonic(), settings.max_idle_per_endpoint)
                conn = None
                return keep
            except Done as done:
                status = done.status
                return False
            except Failed as exc:
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
        metrics.start_sum = metrics.start_sum - t0 if metrics.in_flight else 0.0
        metrics.observe(status, monotonic() - t0)


async def _connect(rt: Runtime, svc: ServiceState, ep: EndpointState) -> UpstreamConn:
    settings = rt.settings
    try:
        return await ep.connect(settings.connect_timeout_sec, settings.max_header_bytes)
    except (OSError, TimeoutError) as exc:
        timed_out = isinstance(exc, TimeoutError)
        why = "timed out" if timed_out else (exc.strerror or str(exc))
        message = f"cannot connect to endpoint {ep.address} of backend service '{svc.name}': {why}"
        raise Failed("connect", 504 if timed_out else 502, message, sent=False) from None
