"""A client connection driven by callbacks: the common request costs no coroutine.

When a whole request head (and a small Content-Length body) is in the buffer and its endpoint
has an idle pooled connection, the request is written there at once and the response relayed
from that connection's `data_received`: a small, verbatim, Content-Length response goes back in
one write and the connection returns to the pool. Everything else (connecting, retries,
streamed bodies, framing changes, interim responses, errors) runs as a coroutine, `forward`,
which takes over mid-exchange when the callback path meets something it does not handle.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import TYPE_CHECKING, Literal

from .conn import IDLE, INF, NONE, UPSTREAM, ClientConn
from .exchange import SMALL_BODY
from .forward import forward
from .http import CRLF, HEAD_END, HttpError, RequestHead
from .pool import EndpointState, ServiceState
from .response import parse_response_head
from .upstream import UpstreamConn

if TYPE_CHECKING:
    from .proxy import LoadBalancer

log = logging.getLogger(__name__)
LINGER_SEC = 2.0


class ClientProtocol(ClientConn):
    __slots__ = ("_body", "_ep", "_req", "_svc", "_t0", "busy", "lb", "rt", "settings", "task")

    def __init__(self, lb: LoadBalancer) -> None:
        super().__init__(lb.settings.max_header_bytes)
        self.lb = lb
        self.rt = lb.rt
        self.settings = lb.settings
        self.busy = False  # a request is being handled (by callbacks or by a task)
        self.task: asyncio.Task[None] | None = None
        self._req: RequestHead | None = None
        self._svc: ServiceState | None = None
        self._ep: EndpointState | None = None
        self._body = b""
        self._t0 = 0.0

    # -- connection ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self.lb.admit(self):
            self.transport.abort()
            return
        peer = self.transport.get_extra_info("peername")
        ip = peer[0] if peer else "127.0.0.1"
        self.extra = b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: http\r\n" % ip.encode()
        self.idle_since = now = monotonic()
        self.deadline = now + self.settings.client_header_timeout_sec

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.busy:
            self._process()

    def eof_received(self) -> bool:
        super().eof_received()
        if not self.busy:
            self.transport.close()
        return True  # keep our side open: a request in flight still gets its answer

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.lb.forget(self)
        conn = self.upstream
        if self._req is not None and conn is not None and conn.on_data is not None:
            self._finish(conn, 499, reusable=False)  # the client left mid-request

    # -- the request loop ----------------------------------------------------------------------

    def _idle(self, now: float = 0.0) -> None:
        self.phase = IDLE
        self.idle_since = now = now or monotonic()
        self.deadline = now + self.settings.client_idle_timeout_sec

    def _process(self) -> None:
        """Take the next request off the buffer (callback mode: no task owns the connection)."""
        lb = self.lb
        while not self.busy and not self.closed and not self.rt.closing:
            buf = self.buf
            if buf[:2] == CRLF:  # stray CRLFs between requests (RFC 9112 §2.2)
                self.buf = buf = buf.lstrip(CRLF)
            end = buf.find(HEAD_END)
            if end < 0 or end > self.limit:
                if end > self.limit or len(buf) > self.limit:
                    lb.reply_unrouted(self, 431, "request header section too large", False)
                    self._end()
                elif self.eof:
                    self.transport.close()
                return
            end += 4
            head, self.buf = buf[:end], buf[end:]
            self.phase, self.deadline = NONE, INF
            t0 = monotonic()
            routed = lb.prepare(self, head, t0)
            if isinstance(routed, tuple):
                req, svc = routed
                picked = self._send(req, svc, t0)
                if picked is not True:
                    self._spawn(req, svc, t0, None, picked)
                    return
            elif routed:
                self._idle()
            else:
                self._end()
                return

    def _spawn(
        self,
        req: RequestHead,
        svc: ServiceState,
        t0: float,
        sent: tuple[EndpointState, UpstreamConn] | None,
        picked: EndpointState | None = None,
    ) -> None:
        self.busy = True
        body = None
        if sent is not None:
            body, self._body = self._body, b""
        work = self._forward(req, svc, t0, body, sent, picked)
        self.task = asyncio.get_running_loop().create_task(work)

    async def _forward(
        self,
        req: RequestHead,
        svc: ServiceState,
        t0: float,
        body: bytes | None,
        sent: tuple[EndpointState, UpstreamConn] | None,
        picked: EndpointState | None,
    ) -> None:
        try:
            keep = await forward(self.rt, self, req, svc, t0, body, sent, picked)
        except Exception:
            log.exception("local load balancer: unexpected error on a client connection")
            self.transport.abort()
            return
        finally:
            self.task = None
        if keep and not self.transport.is_closing():
            self.busy = False
            self._idle()
            self._process()
        else:
            await self._linger()

    def _end(self) -> None:
        """After a response that closes the connection: linger, then close."""
        self.busy = True
        self.task = asyncio.get_running_loop().create_task(self._linger())

    async def _linger(self) -> None:
        """Half-close and read what the client still sends, so that closing with unread input
        (e.g. after a 413 or 431) does not reset the connection before it read our answer."""
        try:
            if self.transport.is_closing():
                return
            await self.drain()
            if self.can_write_eof():
                self.write_eof()
            self.phase = IDLE
            self.deadline = monotonic() + LINGER_SEC
            self.buf = b""
            while await self.read(65536):
                self.buf = b""
        except OSError:
            pass
        finally:
            self.transport.close()

    # -- the callback path ---------------------------------------------------------------------

    def _send(
        self, req: RequestHead, svc: ServiceState, t0: float
    ) -> EndpointState | Literal[True] | None:
        """Write the request to an idle pooled connection now, if the common case allows:
        True. Else the endpoint it picked (to be connected to by `forward`), or None."""
        cl = req.content_length
        if cl < 0 or cl > SMALL_BODY or len(self.buf) < cl or req.expect_continue or svc.retired:
            return None
        ep = svc.pick((), t0)
        if ep is None:
            return None
        conn = ep.take_idle(t0, self.settings.upstream_idle_timeout_sec)
        if conn is None:
            return ep
        body = b""
        if cl:
            body, self.buf = self.buf[:cl], self.buf[cl:]
        metrics = svc.metrics
        metrics.in_flight += 1
        metrics.start_sum += t0
        ep.outstanding += 1
        self.busy = True
        self.must_close = False
        self._req, self._svc, self._ep, self._body, self._t0 = req, svc, ep, body, t0
        self.upstream = conn
        self.timed_out = False
        self.stream_timeout = svc.timeout
        self.phase, self.deadline = UPSTREAM, t0 + svc.timeout
        conn.on_data = self._on_upstream
        head = req.upstream_head(self.extra)
        conn.transport.write(head + body if body else head)
        return True

    def _on_upstream(self) -> None:
        conn = self.upstream
        req = self._req
        if conn is None or req is None:
            return
        buf = conn.buf
        end = buf.find(HEAD_END)
        if end >= 0:
            end += 4
            try:
                resp = parse_response_head(buf[:end])
            except HttpError:
                resp = None
            if (
                resp is not None
                and resp.verbatim
                and resp.status >= 200
                and req.version == 11
                and req.keep_alive
                and req.method != b"HEAD"
                and not self.rt.closing
            ):
                cl, rest = resp.content_length, len(buf) - end
                if cl == rest:
                    conn.buf = b""
                    self.transport.write(buf)
                    now = self._finish(conn, resp.status, resp.keep_alive)
                    if self.closed:
                        return
                    if self._write_paused:  # a slow reader: let the coroutine path wait
                        self._spawn_drain()
                        return
                    self._idle(now)
                    if self.buf or self.eof:
                        self._process()
                    return
                if 0 <= rest < cl <= SMALL_BODY and not conn.eof:
                    return  # the rest of a small body is on its way
        elif end < 0 and not conn.eof and len(buf) <= self.limit:
            return  # the rest of the head is on its way
        self._hand_over(conn)

    def _finish(self, conn: UpstreamConn, status: int, reusable: bool) -> float:
        svc, ep, t0 = self._svc, self._ep, self._t0
        conn.on_data = None
        self.upstream = None
        self._req = self._svc = self._ep = None
        self._body = b""
        self.busy = False
        now = monotonic()
        if ep is not None:
            ep.release(conn, reusable, now, self.settings.max_idle_per_endpoint)
            ep.outstanding -= 1
        if svc is not None:
            m = svc.metrics
            m.in_flight -= 1
            m.start_sum = m.start_sum - t0 if m.in_flight else 0.0
            m.observe(status, now - t0)
        return now

    def _hand_over(self, conn: UpstreamConn) -> None:
        """Something the callback path does not handle: `forward` carries on from here
        (reading the response, relaying it, or retrying after a stale pooled connection)."""
        req, svc, ep, t0 = self._req, self._svc, self._ep, self._t0
        assert req is not None and svc is not None and ep is not None
        conn.on_data = None
        self._req = self._svc = self._ep = None
        self._spawn(req, svc, t0, (ep, conn))

    def _spawn_drain(self) -> None:
        self.busy = True

        async def drained() -> None:
            try:
                await self.drain()
            except OSError:
                self.transport.abort()
                return
            self.busy = False
            self._idle()
            self._process()

        self.task = asyncio.get_running_loop().create_task(drained())
