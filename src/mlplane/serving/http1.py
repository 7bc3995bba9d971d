"""HTTP/1.1 request heads: the parser and status lines of the model server (pure functions).

Deliberately narrow: origin-form (or absolute-form) targets; the headers that frame a request
(Content-Length, Transfer-Encoding: chunked, Connection, Expect: 100-continue) are interpreted,
the rest are skipped. Both Content-Length and Transfer-Encoding together are refused (request
smuggling), as are duplicate differing Content-Lengths and whitespace before a header's colon.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEAD = 64 * 1024
REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 413: "Content Too Large",
    417: "Expectation Failed", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}  # fmt: skip
STATUS_LINES = {code: f"HTTP/1.1 {code} {text}\r\n".encode() for code, text in REASONS.items()}


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass(slots=True)
class Request:
    method: bytes
    path: bytes
    keep_alive: bool
    http10: bool
    content_length: int = 0
    chunked: bool = False
    expect_continue: bool = False


def parse_head(head: bytes) -> Request:
    """Parse a request line and headers (without the final CRLFCRLF); HttpError when malformed."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version == b"HTTP/1.1":
        req = Request(method, target, keep_alive=True, http10=False)
    elif version == b"HTTP/1.0":
        req = Request(method, target, keep_alive=False, http10=True)
    else:
        raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are served")
    q = target.find(b"?")
    if q >= 0:
        req.path = target[:q]
    if not req.path.startswith(b"/"):  # absolute-form: http://host/path
        slash = req.path.find(b"/", req.path.find(b"//") + 2)
        req.path = req.path[slash:] if slash > 0 else b"/"
    has_length = False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "malformed header line")
        name = name.lower()
        value = value.strip()
        if name == b"content-length":
            if not value.isdigit() or (has_length and int(value) != req.content_length):
                raise HttpError(400, "bad Content-Length")
            req.content_length = int(value)
            has_length = True
        elif name == b"transfer-encoding":
            if value.lower() != b"chunked":
                raise HttpError(501, "only 'Transfer-Encoding: chunked' is supported")
            req.chunked = True
        elif name == b"connection":
            tokens = {t.strip() for t in value.lower().split(b",")}
            if b"close" in tokens:
                req.keep_alive = False
            elif b"keep-alive" in tokens:
                req.keep_alive = True
        elif name == b"expect":
            if value.lower() != b"100-continue":
                raise HttpError(417, "only 'Expect: 100-continue' is supported")
            req.expect_continue = True
    if req.chunked and has_length:
        raise HttpError(400, "both Content-Length and Transfer-Encoding given")
    return req
