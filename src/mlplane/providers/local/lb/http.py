"""HTTP/1.1 request heads for the proxy (RFC 9112 framing only), and helpers shared with `response`.

Heads are parsed once into slotted objects; header lines that need no change are forwarded as
the original bytes. Hop-by-hop headers are dropped; the framing (Content-Length or chunked) of a
body is kept, so bodies are relayed as they come.
"""

from __future__ import annotations

import re
from typing import Generic, TypeVar

T = TypeVar("T")

CRLF = b"\r\n"
HEAD_END = b"\r\n\r\n"

# Headers that never cross the proxy (RFC 9110 §7.6.1), plus ones the proxy handles itself.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}
    | {b"transfer-encoding", b"expect"}
)
# Headers the parsers look at; everything else passes through untouched.
FRAMING_HEADERS = HOP_BY_HOP | {b"content-length", b"host"}


# RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" /
# "`" / "|" / "~" / DIGIT / ALPHA. A header name or a method is one or more of these.
TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Bytes no header value or request target may hold: CTLs but HTAB (so CR, LF and NUL), and DEL.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f]")


def is_token(name: bytes) -> bool:
    return bool(name) and not name.translate(None, TCHAR)


def check_framing(head: bytes, status: int) -> None:
    """RFC 9112 §2.2: every line ends in CRLF (no bare CR or LF), no NUL anywhere."""
    crlf = head.count(CRLF)
    if head.count(b"\n") != crlf or head.count(b"\r") != crlf:
        raise HttpError(status, "line endings other than CRLF (bare CR or LF)")
    if b"\0" in head:
        raise HttpError(status, "NUL byte in the message head")


def check_line(line: bytes) -> None:
    """A chunk-size or trailer line (ending in CRLF) holds no other CR, LF or NUL."""
    body = line[:-2]
    if b"\r" in body or b"\n" in body or b"\0" in body:
        raise HttpError(400, "bare CR, LF or NUL in a chunked body's framing")


def header_name(line: bytes, status: int) -> tuple[bytes, int]:
    """(lowercased name, index of the colon) of a header line; HttpError when the name is not a
    token (spaces, obs-fold continuation lines, empty) or the value holds a control byte."""
    c = line.find(b":")
    if c <= 0:
        if line[:1] in (b" ", b"\t"):
            raise HttpError(status, "obsolete line folding (obs-fold) in a header")
        raise HttpError(status, f"malformed header line {line[:80]!r}")
    name = line[:c]
    if not is_token(name):
        if line[:1] in (b" ", b"\t"):
            raise HttpError(status, "obsolete line folding (obs-fold) in a header")
        raise HttpError(status, f"invalid header name {name[:80]!r}")
    if _BAD_VALUE.search(line, c + 1):
        raise HttpError(status, f"control character in the value of header {name[:80]!r}")
    return name.lower(), c


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
        "upstream",
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
        self.upstream: tuple[bytes, bytes] = (b"", b"")  # (extra, head): the last one built

    def upstream_head(self, extra: bytes) -> bytes:
        """The head to send upstream (always HTTP/1.1). `extra` is CRLF-terminated lines."""
        if self.verbatim:
            last_extra, head = self.upstream
            if last_extra is not extra and last_extra != extra:
                head = self.raw[:-2] + extra + CRLF
                self.upstream = (extra, head)
            return head
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


def name_value(line: bytes, status: int = 400) -> tuple[bytes, bytes]:
    name, c = header_name(line, status)
    return name, line[c + 1 :].strip(b" \t")


def forwardable(
    lines: list[bytes], also_drop: set[bytes] | frozenset[bytes] = HOP_BY_HOP
) -> list[bytes]:
    """Header lines minus hop-by-hop ones (slow path: only when the head must be rewritten)."""
    return [h for h in lines if name_value(h)[0] not in also_drop]


def tokens(value: bytes) -> set[bytes]:
    return {t.strip().lower() for t in value.split(b",")}


def content_length_value(value: bytes, current: int) -> int:
    if not value.isdigit() or len(value) > 18:
        raise HttpError(400, "invalid Content-Length")
    if current >= 0:
        raise HttpError(400, "more than one Content-Length header")
    return int(value)


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


def parse_request_head(head: bytes) -> RequestHead:
    """`head` ends with CRLF CRLF. Raises HttpError for what a client must be told about."""
    req = _REQUESTS.entries.get(head)
    if req is None:
        req = _parse_request_head(head)
        _REQUESTS.put(head, req)
    return req


def _parse_request_head(head: bytes) -> RequestHead:
    req = RequestHead()
    req.raw = head
    check_framing(head, 400)
    lines = head.split(CRLF)
    del lines[-2:]
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not is_token(parts[0]) or not parts[1]:
        raise HttpError(400, "malformed request line")
    req.method, target, version = parts
    if _BAD_TARGET.search(target):
        raise HttpError(400, "malformed request target")
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
        name, c = header_name(hline, 400)
        if name not in FRAMING_HEADERS:
            continue
        value = hline[c + 1 :].strip(b" \t")
        if name == b"content-length":
            cl = content_length_value(value, cl)
        elif name == b"host":
            if req.host and req.host != value.lower():
                raise HttpError(400, "conflicting Host headers")
            req.host = value.lower()
        elif name == b"transfer-encoding":
            if req.chunked:
                raise HttpError(400, "more than one Transfer-Encoding header")
            if value.lower() != b"chunked":
                raise HttpError(501, "only 'Transfer-Encoding: chunked' is supported")
            req.chunked = True
            req.verbatim = False
        else:
            req.verbatim = False
            if name == b"connection":
                conn_tokens |= tokens(value)
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
        req.headers = forwardable(lines[1:], HOP_BY_HOP | conn_tokens)
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


def chunk_size(line: bytes) -> int:
    """Parse a chunk-size line (with CRLF, optional extensions)."""
    check_line(line)
    size = line[:-2].split(b";", 1)[0].rstrip(b" \t")
    if not size or len(size) > 15 or size.strip(b"0123456789abcdefABCDEF"):
        raise HttpError(400, "invalid chunk size")
    try:
        return int(size, 16)
    except ValueError:
        raise HttpError(400, "invalid chunk size") from None
