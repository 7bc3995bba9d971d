"""A small HTTP/1.1 server on asyncio streams for the agent's API and metadata endpoints.

Content-Length bodies only (no chunked requests), keep-alive, JSON helpers. It listens on
127.0.0.1 only. Handlers are `async def handler(request) -> Response`; an exception in a handler
is logged and answered with 500.

Hardened for a listener any local process can reach: strict request lines and header fields
(RFC 9112: token names, no CR/LF/NUL in values, no obs-fold, one Content-Length), an `admit`
hook that sees the head before any body byte is read (the gateway refuses a request without a
valid token there, so an anonymous client cannot make the agent buffer a body), a body cap, a
connection cap, and timeouts for the head, the body and idle keep-alive connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
MAX_CONNECTIONS = 256
HEAD_TIMEOUT = 10.0  # seconds from the first byte of a request to the end of its head
BODY_TIMEOUT = 30.0
IDLE_TIMEOUT = 75.0  # a keep-alive connection with no request
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")
_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 411: "Length Required",
    412: "Precondition Failed", 413: "Payload Too Large", 429: "Too Many Requests",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
}  # fmt: skip


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded, no query
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes = b""
    raw_path: str = ""  # as sent (percent-encoded), no query
    query_pairs: tuple[tuple[str, str], ...] = ()  # every query parameter, repeated ones too
    peer: tuple[str, int] | None = None  # the client's address

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError as exc:
            raise BadRequest(f"request body is not JSON: {exc}") from None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def json(cls, status: int, data: object, **kw: Any) -> Response:
        return cls(status, json.dumps(data).encode(), **kw)

    @classmethod
    def text(cls, status: int, text: str, **kw: Any) -> Response:
        return cls(status, text.encode(), "text/plain; charset=utf-8", **kw)


class BadRequest(Exception):
    """Malformed request: answered with 400 and this message."""

    status = 400


class TooLarge(BadRequest):
    status = 413


Handler = Callable[[Request], Awaitable[Response]]
# Sees a request's head (body still unread); a Response refuses it and closes the connection.
Admit = Callable[[Request], Response | None]


async def serve(
    handler: Handler,
    port: int = 0,
    *,
    admit: Admit | None = None,
    max_body: int = MAX_BODY,
    max_connections: int = MAX_CONNECTIONS,
) -> asyncio.Server:
    """Listen on 127.0.0.1:`port` (0: a free port); read it from `server.sockets[0]`."""
    open_connections = 0

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_connections
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = writer.get_extra_info("peername")
        open_connections += 1
        try:
            if open_connections > max_connections:
                writer.write(_encode(Response.text(503, "too many connections"), False))
                return
            await _serve_connection(reader, writer, handler, admit, max_body, peer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            open_connections -= 1
            writer.close()

    return await asyncio.start_server(on_client, HOST, port, limit=MAX_HEAD)


async def _serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    admit: Admit | None,
    max_body: int,
    peer: Any,
) -> None:
    while True:
        try:
            # Idle until the first byte, then the whole head within HEAD_TIMEOUT.
            first = await asyncio.wait_for(reader.read(1), IDLE_TIMEOUT)
            if not first:
                return
            head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            request = _parse_head(head, peer)
            refusal = admit(request) if admit is not None else None
            if refusal is not None:
                writer.write(_encode(refusal, keep_alive=False))
                await writer.drain()
                return
            length = _content_length(request.headers, max_body)
            if length:
                body = await asyncio.wait_for(reader.readexactly(length), BODY_TIMEOUT)
                request = _with_body(request, body)
        except BadRequest as exc:
            writer.write(_encode(Response.text(exc.status, str(exc)), keep_alive=False))
            await writer.drain()
            return
        except asyncio.LimitOverrunError:
            writer.write(_encode(Response.text(400, "request head too large"), False))
            await writer.drain()
            return
        except TimeoutError:
            with contextlib.suppress(ConnectionError):
                writer.write(_encode(Response.text(408, "request timed out"), False))
                await writer.drain()
            return
        try:
            response = await handler(request)
        except BadRequest as exc:
            response = Response.text(exc.status, str(exc))
        except Exception:
            log.exception("error handling %s %s", request.method, request.path)
            response = Response.text(500, "internal error in the local agent")
        keep = request.headers.get("connection", "").lower() != "close"
        writer.write(_encode(response, keep_alive=keep))
        await writer.drain()
        if not keep:
            return


def _parse_head(head: bytes, peer: Any) -> Request:
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not _TOKEN.fullmatch(parts[0]):
        raise BadRequest(f"malformed request line {lines[0][:100]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise BadRequest(f"malformed header line {line[:100]!r}")
        if _BAD_VALUE.search(value):
            raise BadRequest(f"header {name[:60]!r} holds a forbidden character")
        key = name.decode("latin-1").lower()
        text = value.strip(b" \t").decode("latin-1")
        if key in headers:
            if key in ("content-length", "authorization", "host", "transfer-encoding"):
                raise BadRequest(f"header {key!r} repeated")
            text = f"{headers[key]}, {text}"
        headers[key] = text
    if "transfer-encoding" in headers:
        raise BadRequest("Transfer-Encoding is not supported: send Content-Length")
    target = parts[1].decode("latin-1")
    url = urlsplit(target)
    pairs = tuple(parse_qsl(url.query, keep_blank_values=True))
    peer_addr = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None
    return Request(
        parts[0].decode("ascii"),
        unquote(url.path),
        dict(pairs),
        headers,
        b"",
        url.path,
        pairs,
        peer_addr,
    )


def _content_length(headers: Mapping[str, str], max_body: int) -> int:
    raw = headers.get("content-length", "0")
    if not raw.isdigit():
        raise BadRequest("bad Content-Length")
    length = int(raw)
    if length > max_body:
        raise TooLarge(f"request body over {max_body} bytes")
    return length


def _with_body(request: Request, body: bytes) -> Request:
    return Request(
        request.method,
        request.path,
        request.query,
        request.headers,
        body,
        request.raw_path,
        request.query_pairs,
        request.peer,
    )


def _encode(response: Response, keep_alive: bool) -> bytes:
    reason = _REASONS.get(response.status, "Status")
    head = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{k}: {v}" for k, v in response.headers),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body
