"""One GET to a server on 127.0.0.1, for the start-up path of everyday commands (decision 0005):
JSON over `_socket`, the C module under `socket` (whose import builds enums of every socket
constant), not http.client (whose import, with the email package's, costs more than the
request). Used for the local agent's own admin surface and a notebook's JupyterLab status;
Google's APIs go through `apis.transport`.
"""

from __future__ import annotations

import _socket

from mlplane import jsonread


class LoopbackError(Exception):
    """The server did not answer, or answered something that is not HTTP with a JSON body."""


def get_json(
    port: int, path: str, authorization: str, timeout: float = 10.0, what: str = "the server"
) -> tuple[int, object]:
    """GET `path` from 127.0.0.1:`port` with that Authorization header: (status, JSON body)."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {authorization}\r\n"
        "Accept: application/json\r\nConnection: close\r\n\r\n"
    ).encode()
    chunks = []
    try:
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(("127.0.0.1", port))
            sock.sendall(request)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        finally:
            sock.close()
    except OSError as exc:
        raise LoopbackError(f"{what} on port {port} does not answer: {exc}") from None
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, _, headers = head.partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise LoopbackError(f"{what} on port {port} answered {status_line[:80]!r}")
    if b"transfer-encoding: chunked" in headers.lower():
        body = _dechunk(body)
    try:
        return int(parts[1]), jsonread.loads(body or b"null")
    except ValueError:
        raise LoopbackError(f"{what} on port {port} answered non-JSON for {path}") from None


def _dechunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0], 16)
        except ValueError:
            raise LoopbackError("a chunked body that does not parse") from None
        if size == 0:
            break
        out.append(rest[:size])
        data = rest[size + 2 :]
    return b"".join(out)
