"""One request to the local agent's own admin surface (`/_mlplane/...`), on the start-up path of
`mlplane status` (decision 0005): no dataclasses, no pathlib, no http.client.

The agent is found from `agent.json` (as `paths.read_info`) and is running if its PID is alive;
a refused connection means it has just gone (the request itself: `apis.loopback`). Google's
APIs are not spoken here: they go through `apis.transport`.
"""

from __future__ import annotations

import os

from mlplane import jsonread
from mlplane.apis import loopback

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
            d = jsonread.load(f)
        pid, port = int(d["pid"]), int(d["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return port if start_time(pid) is not None else None


def get_json(port: int, path: str, token: str, timeout: float = 10.0) -> tuple[int, object]:
    """GET `path` from the agent on 127.0.0.1:`port` with a bearer token: (status, JSON body)."""
    try:
        return loopback.get_json(port, path, f"Bearer {token}", timeout, "the local agent")
    except loopback.LoopbackError as exc:
        raise AdminError(str(exc)) from None


def frontend_base(port: str) -> str:
    """The local load balancer's base URL: it listens on 127.0.0.1 at the forwarding rule's
    port (its IPAddress, if any, is a Google address the agent does not own)."""
    return f"http://127.0.0.1:{port}"
