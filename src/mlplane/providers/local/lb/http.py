"""A small HTTP/1.1 message-head parser/writer for the proxy (RFC 9112 framing only).

Heads are parsed once into slotted objects; header lines that need no change are forwarded as
the original bytes. Hop-by-hop headers are dropped; the framing (Content-Length or chunked) of a
body is kept, so bodies are relayed as they come.
"""

from __future__ import annotations

import json
from typing import Generic, TypeVar

T = TypeVar("T")

CRLF = b"\r\n"
HEAD_END = b"\r\n\r\n"

# Headers that never cross the proxy (RFC 9110 §7.6.1), plus ones the proxy handles itself.
_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}
    | {b"transfer-encoding", b"expect"}
)
_SPECIAL = _HOP | {b"content-length", b"host"}
_REASONS = {
    100: "Continue",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """A malformed message: the proxy answers `status` (for requests) and closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RequestHead:
    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "headers",
        "host",
        "keep_alive",
        "method",
        "path",
        "raw",
        "target",
        "verbatim",
        "version",
    )

    def __init__(self) -> None:
        self.method = b""
        self.target = b""
        self.path = b""
        self.version = 11
        self.host = b""
        self.headers: list[bytes] = []  # forwardable header lines (only when not verbatim)
        self.content_length = 0  # -1 when chunked
        self.chunked = False
        self.keep_alive = True
        self.expect_continue = False
        self.verbatim = True  # the raw head can be forwarded unchanged (plus our extra lines)
        self.raw = b""

    def upstream_head(self, extra: bytes) -> bytes:
        """The head to send upstream (always HTTP/1.1). `extra` is CRLF-terminated lines."""
        if self.verbatim:
            return self.raw[:-2] + extra + CRLF
        parts = [self.method, b" ", self.target, b" HTTP/1.1\r\n"]
        for line in self.headers:
            parts.append(line)
            parts.append(CRLF)
        if self.chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        if not self.host:  # an HTTP/1.0 client may omit it; HTTP/1.1 upstreams need one
            parts.append(b"Host: 127.0.0.1\r\n")
        parts.append(extra)
        parts.append(CRLF)
        return b"".join(parts)


def _name_value(line: bytes) -> tuple[bytes, bytes]:
    name, sep, value = line.partition(b":")
    if not sep or not name or name[-1] in b" \t" or name[0] in b" \t":
        raise HttpError(400, f"malformed header line {line[:80]!r}")
    return name.lower(), value.strip()


def _forwardable(
    lines: list[bytes], also_drop: set[bytes] | frozenset[bytes] = _HOP
) -> list[bytes]:
    """Header lines minus hop-by-hop ones (slow path: only when the head must be rewritten)."""
    return [h for h in lines if _name_value(h)[0] not in also_drop]


def _tokens(value: bytes) -> set[bytes]:
    return {t.strip().lower() for t in value.split(b",")}


def _content_length(value: bytes, current: int) -> int:
    if not value.isdigit() or len(value) > 18:
        raise HttpError(400, "invalid Content-Length")
    n = int(value)
    if current >= 0 and current != n:
        raise HttpError(400, "conflicting Content-Length headers")
    return n


class HeadCache(Generic[T]):
    """Memoised parses of message heads, keyed by their exact bytes.

    Clients and replicas at a high request rate send the same head bytes again and again (same
    path, length, date second); a hit costs one hash + one dict lookup instead of a parse.
    Parsed heads are shared, so they are never mutated after parsing. Bounded: cleared when full;
    heads over `max_head` bytes are not kept.
    """

    __slots__ = ("entries", "max_entries", "max_head")

    def __init__(self, max_entries: int = 512, max_head: int = 1024) -> None:
        self.entries: dict[bytes, T] = {}
        self.max_entries = max_entries
        self.max_head = max_head

    def put(self, head: bytes, parsed: T) -> None:
        if len(head) <= self.max_head:
            if len(self.entries) >= self.max_entries:
                self.entries.clear()
            self.entries[head] = parsed


_REQUESTS: HeadCache[RequestHead] = HeadCache()
_RESPONSES: HeadCache[ResponseHead] = HeadCache()


def parse_request_head(head: bytes) -> RequestHead:
    """`head` ends with CRLF CRLF. Raises HttpError for what a client must be told about."""
    req = _REQUESTS.entries.get(head)
    if req is None:
        req = _parse_request_head(head)
        _REQUESTS.put(head, req)
    return req


def parse_response_head(head: bytes) -> ResponseHead:
    resp = _RESPONSES.entries.get(head)
    if resp is None:
        resp = _parse_response_head(head)
        _RESPONSES.put(head, resp)
    return resp


def _parse_request_head(head: bytes) -> RequestHead:
    req = RequestHead()
    req.raw = head
    lines = head.split(CRLF)
    del lines[-2:]
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HttpError(400, "malformed request line")
    req.method, target, version = parts
    if version == b"HTTP/1.1":
        pass
    elif version == b"HTTP/1.0":
        req.version = 10
        req.keep_alive = False
        req.verbatim = False
    elif version.startswith(b"HTTP/"):
        raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
    else:
        raise HttpError(400, "malformed request line")
    if target[:1] != b"/":
        target = _origin_form(req, target)
    req.target = target
    q = target.find(b"?")
    req.path = target if q < 0 else target[:q]
    cl = -1
    conn_tokens: set[bytes] = set()
    for i in range(1, len(lines)):
        hline = lines[i]
        c = hline.find(b":")
        if c <= 0 or hline[c - 1] in b" \t" or hline[0] in b" \t":
            raise HttpError(400, f"malformed header line {hline[:80]!r}")
        name = hline[:c].lower()
        if name not in _SPECIAL:
            continue
        value = hline[c + 1 :].strip()
        if name == b"content-length":
            cl = _content_length(value, cl)
        elif name == b"host":
            if req.host and req.host != value.lower():
                raise HttpError(400, "conflicting Host headers")
            req.host = value.lower()
        elif name == b"transfer-encoding":
            if value.lower() != b"chunked" or req.chunked:
                raise HttpError(501, "only 'Transfer-Encoding: chunked' is supported")
            req.chunked = True
            req.verbatim = False
        else:
            req.verbatim = False
            if name == b"connection":
                conn_tokens |= _tokens(value)
            elif name == b"expect":
                if value.lower() != b"100-continue":
                    raise HttpError(417, "only 'Expect: 100-continue' is supported")
                req.expect_continue = True
    if req.chunked:
        if cl >= 0:
            raise HttpError(400, "both Content-Length and Transfer-Encoding")
        req.content_length = -1
    else:
        req.content_length = max(cl, 0)
    if conn_tokens:
        if b"close" in conn_tokens:
            req.keep_alive = False
        elif b"keep-alive" in conn_tokens and req.version == 10:
            req.keep_alive = True
    if not req.verbatim:
        # Headers named in Connection are hop-by-hop too.
        req.headers = _forwardable(lines[1:], _HOP | conn_tokens)
    if not req.host and req.version == 11:
        raise HttpError(400, "HTTP/1.1 request without Host header")
    return req


def _origin_form(req: RequestHead, target: bytes) -> bytes:
    if target == b"*":
        return target
    lower = target.lower()
    if not lower.startswith(b"http://"):
        raise HttpError(400, "unsupported request target form")
    rest = target[7:]
    slash = rest.find(b"/")
    authority, path = (rest, b"/") if slash < 0 else (rest[:slash], rest[slash:])
    req.verbatim = False
    # The absolute-form authority overrides Host (RFC 9112 §3.2.2).
    req.host = authority.lower()
    return path


class ResponseHead:
    __slots__ = (
        "chunked",
        "content_length",
        "keep_alive",
        "lines",
        "raw",
        "status",
        "status_line",
        "verbatim",
    )

    def __init__(self) -> None:
        self.status = 0
        self.status_line = b""
        self.lines: list[bytes] = []  # header lines as received
        self.content_length = -1  # -1: not given (chunked or close-delimited)
        self.chunked = False
        self.keep_alive = True
        self.verbatim = True  # raw can go to a keep-alive HTTP/1.1 client unchanged
        self.raw = b""


def _parse_response_head(head: bytes) -> ResponseHead:
    resp = ResponseHead()
    resp.raw = head
    lines = head.split(CRLF)
    del lines[-2:]
    line = lines[0]
    if (
        len(line) < 12
        or line[:7] != b"HTTP/1."
        or line[8] != 32
        or not line[9:12].isdigit()
        or line[12:13] not in (b"", b" ")
    ):
        raise HttpError(502, f"malformed status line {line[:80]!r}")
    resp.status = int(line[9:12])
    if line[7] == 49:  # HTTP/1.1
        resp.status_line = line
    else:  # HTTP/1.0 upstream: keep-alive only when it says so
        resp.status_line = b"HTTP/1.1" + line[8:]
        resp.keep_alive = False
        resp.verbatim = False
    cl = -1
    for i in range(1, len(lines)):
        hline = lines[i]
        c = hline.find(b":")
        if c <= 0 or hline[c - 1] in b" \t" or hline[0] in b" \t":
            raise HttpError(502, f"malformed header line {hline[:80]!r}")
        name = hline[:c].lower()
        if name not in _SPECIAL:
            continue
        if name == b"content-length":
            cl = _content_length(hline[c + 1 :].strip(), cl)
        elif name == b"transfer-encoding":
            if hline[c + 1 :].strip().lower() != b"chunked":
                raise HttpError(502, "unsupported upstream Transfer-Encoding")
            resp.chunked = True
        elif name != b"host":
            resp.verbatim = False
            if name == b"connection":
                tokens = _tokens(hline[c + 1 :])
                if b"close" in tokens:
                    resp.keep_alive = False
                elif b"keep-alive" in tokens:
                    resp.keep_alive = True
    if resp.chunked and cl >= 0:  # chunked wins; a Content-Length beside it must not pass
        resp.verbatim = False
        resp.lines = [h for h in lines[1:] if _name_value(h)[0] != b"content-length"]
    else:
        resp.lines = lines[1:]
    resp.content_length = -1 if resp.chunked else cl
    return resp


def response_head(resp: ResponseHead, *, chunked: bool, connection: bytes | None) -> bytes:
    """The head for the client: our status line, forwardable headers, framing, Connection."""
    parts = [resp.status_line, CRLF]
    for line in _forwardable(resp.lines):
        parts.append(line)
        parts.append(CRLF)
    if chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    if connection is not None:
        parts.append(b"Connection: " + connection + CRLF)
    parts.append(CRLF)
    return b"".join(parts)


def json_response(status: int, body: dict[str, object], *, keep_alive: bool) -> bytes:
    """A complete response generated by the proxy itself."""
    payload = json.dumps(body).encode()
    return simple_response(status, payload, b"application/json", keep_alive=keep_alive)


def error_response(status: int, message: str, *, keep_alive: bool = False) -> bytes:
    return json_response(status, {"error": message, "code": status}, keep_alive=keep_alive)


def simple_response(status: int, body: bytes, content_type: bytes, *, keep_alive: bool) -> bytes:
    reason = _REASONS.get(status, "Error").encode()
    conn = b"keep-alive" if keep_alive else b"close"
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"Content-Type: " + content_type + CRLF,
            b"Content-Length: %d\r\n" % len(body),
            b"Connection: " + conn + CRLF,
            CRLF,
            body,
        )
    )


def chunk_size(line: bytes) -> int:
    """Parse a chunk-size line (with CRLF, optional extensions)."""
    size = line.split(b";", 1)[0].strip()
    if not size or len(size) > 15 or size.strip(b"0123456789abcdefABCDEF"):
        raise HttpError(400, "invalid chunk size")
    try:
        return int(size, 16)
    except ValueError:
        raise HttpError(400, "invalid chunk size") from None
