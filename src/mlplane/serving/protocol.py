"""HTTP/1.1 connections of the model server, on asyncio's Protocol API (no streams per request).

Keep-alive (HTTP/1.1 default, HTTP/1.0 on request), pipelining (one request at a time, in
order), Content-Length and chunked request bodies, `Expect: 100-continue`, TCP_NODELAY, one
write per response. Bodies over `max_body` get 413 before they are read; heads over 64 KiB get
431. On drain, idle connections close at once and busy ones after their response
(`Connection: close`).
"""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial

from mlplane.serving.app import ROUTE_METHOD, ModelApp, Route, error_body
from mlplane.serving.http1 import MAX_HEAD, STATUS_LINES, HttpError, Request, parse_head


@dataclass
class Shared:
    """State every connection of one server sees."""

    app: ModelApp
    executor: Executor
    max_body: int
    date: bytes = b""
    draining: bool = False
    connections: set[HttpConnection] = field(default_factory=set)
    drained: asyncio.Event = field(default_factory=asyncio.Event)


class HttpConnection(asyncio.Protocol):
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.req: Request | None = None
        self.body = bytearray()  # a chunked body being assembled
        self.busy = False  # a prediction runs in the thread pool
        self.closing = False
        self.last_active = self.loop.time()
        self.request_started = 0.0

    # --- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # asyncio sets it too; explicit, as the replica contract needs it
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.shared.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.shared.connections.discard(self)
        if self.shared.draining and not self.shared.connections:
            self.shared.drained.set()

    def data_received(self, data: bytes) -> None:
        now = self.last_active = self.loop.time()
        if self.req is None and not self.buf:
            self.request_started = now
        self.buf += data
        if not self.busy:
            self._process()

    def eof_received(self) -> bool:
        if self.busy:  # answer the request in flight, then close
            self.closing = True
            return True
        return False

    # --- state seen by the server

    @property
    def idle(self) -> bool:
        return not self.busy and self.req is None and not self.buf

    def close_if_idle(self) -> None:
        if self.idle and self.transport is not None:
            self.closing = True
            self.transport.close()

    def timed_out(self) -> None:
        """The server's sweep found a request whose rest never came."""
        self._fail(408, "request not received in time")

    # --- request handling

    def _process(self) -> None:
        buf = self.buf
        while not self.busy and not self.closing:
            req = self.req
            if req is None:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        self._fail(431, "request head larger than 64 KiB")
                    return
                try:
                    req = parse_head(bytes(buf[:end]))
                except HttpError as exc:
                    self._fail(exc.status, exc.message)
                    return
                del buf[: end + 4]
                if req.content_length > self.shared.max_body:
                    self._fail(413, f"request body over {self.shared.max_body} bytes")
                    return
                self.req = req
                if req.expect_continue and not buf and (req.chunked or req.content_length):
                    assert self.transport is not None
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if req.chunked:
                try:
                    done = self._dechunk()
                except HttpError as exc:
                    self._fail(exc.status, exc.message)
                    return
                if not done:
                    return
                body = bytes(self.body)
                self.body.clear()
            else:
                n = req.content_length
                if len(buf) < n:
                    return
                body = bytes(buf[:n])
                del buf[:n]
            self.req = None
            self.request_started = self.loop.time()  # of the next request, if pipelined
            self._dispatch(req, body)

    def _dechunk(self) -> bool:
        """Move complete chunks from buf to body; True once the last chunk (and trailers) came."""
        buf = self.buf
        while True:
            nl = buf.find(b"\r\n")
            if nl < 0:
                if len(buf) > 4096:
                    raise HttpError(400, "malformed chunk size line")
                return False
            try:
                size = int(bytes(buf[:nl]).split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HttpError(400, "malformed chunk size line") from None
            if size == 0:
                end = nl + 2 if buf[nl + 2 : nl + 4] == b"\r\n" else buf.find(b"\r\n\r\n", nl)
                if end < 0 or len(buf) < end + 2:
                    return False
                del buf[: end + 2]
                return True
            if len(self.body) + size > self.shared.max_body:
                raise HttpError(413, f"request body over {self.shared.max_body} bytes")
            if len(buf) < nl + 2 + size + 2:
                return False
            if buf[nl + 2 + size : nl + 4 + size] != b"\r\n":
                raise HttpError(400, "chunk not followed by CRLF")
            self.body += buf[nl + 2 : nl + 2 + size]
            del buf[: nl + 4 + size]

    def _dispatch(self, req: Request, body: bytes) -> None:
        app = self.shared.app
        route = app.routes.get(req.path)
        head_only = req.method == b"HEAD"
        if route is None:
            self._respond(
                req, 404, error_body(404, f"no route {req.path.decode(errors='replace')}")
            )
        elif req.method != ROUTE_METHOD[route] and not (head_only and route is not Route.PREDICT):
            allow = ROUTE_METHOD[route] + (b"" if route is Route.PREDICT else b", HEAD")
            msg = error_body(405, f"use {allow.decode()}")
            self._respond(req, 405, msg, b"Allow: " + allow + b"\r\n")
        elif route is Route.PREDICT:
            if app.inline:
                self._respond(req, *app.predict(body))
            else:
                self.busy = True
                assert self.transport is not None
                self.transport.pause_reading()
                fut = self.loop.run_in_executor(self.shared.executor, app.predict, body)
                fut.add_done_callback(partial(self._predicted, req))
        elif route is Route.HEALTH:
            if self.shared.draining:
                self._respond(req, 503, error_body(503, "shutting down"), head_only=head_only)
            else:
                self._respond(req, 200, app.health_body, head_only=head_only)
        else:
            self._respond(req, 200, app.openapi_body, head_only=head_only)

    def _predicted(self, req: Request, fut: asyncio.Future[tuple[int, bytes]]) -> None:
        self.busy = False
        if self.transport is None or self.transport.is_closing() or fut.cancelled():
            return
        self._respond(req, *fut.result())
        if not self.transport.is_closing():
            self.transport.resume_reading()
            self._process()

    def _respond(
        self,
        req: Request | None,
        status: int,
        body: bytes,
        extra: bytes = b"",
        head_only: bool = False,
    ) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        keep = req is not None and req.keep_alive and not self.closing and not self.shared.draining
        if not keep:
            conn = b"Connection: close\r\n"
        elif req is not None and req.http10:
            conn = b"Connection: keep-alive\r\n"
        else:
            conn = b""
        head = b"%sServer: mlplane-serving\r\nDate: %s\r\nContent-Type: application/json\r\n" % (
            STATUS_LINES[status],
            self.shared.date,
        )
        length = b"Content-Length: %d\r\n" % len(body)
        transport.write(b"".join((head, length, conn, extra, b"\r\n", b"" if head_only else body)))
        self.last_active = self.loop.time()
        if not keep:
            self.closing = True
            transport.close()

    def _fail(self, status: int, message: str) -> None:
        """Answer a request we cannot read further, then close the connection."""
        self.buf.clear()
        self.req = None
        self._respond(None, status, error_body(status, message))
