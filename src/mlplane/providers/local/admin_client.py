"""One request to the local agent's own admin surface (`/_mlplane/...`), on the start-up path of
`mlplane status` (decision 0005): JSON over `_socket`, the C module under `socket` (whose
import builds enums of every socket constant), not http.client (whose import, with the email
package's, costs more than the request); no dataclasses, no pathlib.

The agent is found from `agent.json` (as `paths.read_info`) and is running if its PID is alive;
a refused connection means it has just gone. Google's APIs are not spoken here: they go
through `apis.transport`.
"""

from __future__ import annotations

import _socket
import json
import os

from .procfs import start_time

STATE_DIR = ".mlplane"  # as paths.STATE_DIR / paths.AGENT_DIR
AGENT_DIR = "agent"


class AdminError(Exception):
    """The agent did not answer, or answered something that is not JSON."""


def agent_port(project_file: str) -> int | None:
    """The API port of the project's running agent, or None."""
    info = os.path.join(os.path.dirname(os.path.abspath(project_file)), STATE_DIR, AGENT_DIR)
    try:
        with open(os.path.join(info, "agent.json")) as f:
            d = json.load(f)
        pid, port = int(d["pid"]), int(d["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return port if start_time(pid) is not None else None


def get_json(port: int, path: str, token: str, timeout: float = 10.0) -> tuple[int, object]:
    """GET `path` from the agent on 127.0.0.1:`port` with a bearer token: (status, JSON body)."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
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
        raise AdminError(f"the local agent on port {port} does not answer: {exc}") from None
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.partition(b"\r\n")[0]  # the agent answers with Content-Length
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise AdminError(f"the local agent on port {port} answered {status_line[:80]!r}")
    try:
        return int(parts[1]), json.loads(body or b"null")
    except ValueError:
        raise AdminError(f"the local agent on port {port} answered non-JSON for {path}") from None


def frontend_base(port: str) -> str:
    """The local load balancer's base URL: it listens on 127.0.0.1 at the forwarding rule's
    port (its IPAddress, if any, is a Google address the agent does not own)."""
    return f"http://127.0.0.1:{port}"
