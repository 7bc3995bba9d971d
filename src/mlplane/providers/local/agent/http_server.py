"""A small HTTP/1.1 server on asyncio streams for the agent's API and metadata endpoints.

Content-Length bodies only (no chunked requests), keep-alive, JSON helpers. It listens on
127.0.0.1 only. Handlers are `async def handler(request) -> Response`; an exception in a handler
is logged and answered with 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 411: "Length Required", 412: "Precondition Failed",
    413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable",
}  # fmt: skip


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded, no query
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes = b""

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


Handler = Callable[[Request], Awaitable[Response]]


async def serve(handler: Handler, port: int = 0) -> asyncio.Server:
    """Listen on 127.0.0.1:`port` (0: a free port); read it from `server.sockets[0]`."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    request = await _read_request(reader)
                except BadRequest as exc:
                    writer.write(_encode(Response.text(400, str(exc)), keep_alive=False))
                    break
                if request is None:
                    break
                try:
                    response = await handler(request)
                except BadRequest as exc:
                    response = Response.text(400, str(exc))
                except Exception:
                    log.exception("error handling %s %s", request.method, request.path)
                    response = Response.text(500, "internal error in the local agent")
                keep = request.headers.get("connection", "").lower() != "close"
                writer.write(_encode(response, keep_alive=keep))
                await writer.drain()
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(on_client, HOST, port, limit=MAX_HEAD)


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"malformed request line {lines[0][:100]!r}")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(f"malformed header line {line[:100]!r}")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequest("chunked request bodies are not supported: send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise BadRequest("bad Content-Length") from None
    if not 0 <= length <= MAX_BODY:
        raise BadRequest(f"request body must be 0..{MAX_BODY} bytes")
    body = await reader.readexactly(length) if length else b""
    url = urlsplit(target)
    return Request(method, unquote(url.path), dict(parse_qsl(url.query)), headers, body)


def _encode(response: Response, *, keep_alive: bool) -> bytes:
    reason = _REASONS.get(response.status, "Status")
    head = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{k}: {v}" for k, v in response.headers),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body
