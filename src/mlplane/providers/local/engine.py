"""The Docker engine on this machine, when there is one: where it listens and how to run its CLI.

The engine is the one `DOCKER_HOST` names, else the default socket (/var/run/docker.sock). It is
*reachable* when its API answers `GET /version` with a server version within a few seconds
(asked on the socket itself for unix:// and plain tcp:// hosts, else with `docker version`);
the answer is remembered for a short while, so a caller that asks per container pays little.
Without an engine, image-based workloads and the docker build steps
are skipped with a message that says so (the rest of mlplane does not need one).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_SOCKET = "/var/run/docker.sock"
CHECK_TTL_SEC = 10.0


@dataclass(frozen=True)
class Engine:
    cli: str  # the docker CLI
    host: str  # DOCKER_HOST value (unix:///path or tcp://127.0.0.1:PORT)
    version: str  # the server's version

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's) with DOCKER_HOST set to this engine, and the
        classic builder (Debian's docker.io has no buildx plugin)."""
        env = dict(os.environ if base is None else base)
        env["DOCKER_HOST"] = self.host
        env["DOCKER_BUILDKIT"] = "0"
        env.pop("DOCKER_CONTEXT", None)
        return env


def _candidate(env: Mapping[str, str]) -> str | None:
    host = env.get("DOCKER_HOST", "")
    if host:
        return host
    if os.path.exists(DEFAULT_SOCKET):
        return f"unix://{DEFAULT_SOCKET}"
    return None


def why_not(env: Mapping[str, str] | None = None) -> str:
    """Why no engine is reachable, in one line (for skip messages)."""
    env = os.environ if env is None else env
    if shutil.which("docker") is None:
        return "no docker CLI on PATH (apt-get install docker.io)"
    host = _candidate(env)
    if host is None:
        return f"DOCKER_HOST is unset and {DEFAULT_SOCKET} does not exist (start dockerd)"
    return f"the engine at {host} does not answer `docker version`"


_cache: dict[str, tuple[float, Engine | None]] = {}


def find_engine(env: Mapping[str, str] | None = None, *, fresh: bool = False) -> Engine | None:
    """The reachable engine, or None."""
    env = os.environ if env is None else env
    cli = shutil.which("docker", path=env.get("PATH"))
    host = _candidate(env)
    if cli is None or host is None:
        return None
    now = time.monotonic()
    hit = _cache.get(host)
    if hit is not None and not fresh and now - hit[0] < CHECK_TTL_SEC:
        return hit[1]
    engine: Engine | None = None
    direct = _api_version(host, env)
    if direct is not None:
        engine = Engine(cli, host, direct) if direct else None
        _cache[host] = (now, engine)
        return engine
    try:
        out = subprocess.run(
            [cli, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=10,
            env={**env, "DOCKER_HOST": host},
        )
        if out.returncode == 0 and out.stdout.strip():
            engine = Engine(cli, host, out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        engine = None
    _cache[host] = (now, engine)
    return engine


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _api_version(host: str, env: Mapping[str, str], timeout: float = 5.0) -> str | None:
    """The server version from the engine's API ('' when it does not answer); None when this
    host is not one asked directly (ssh://, TLS: the CLI knows how)."""
    conn: http.client.HTTPConnection
    if host.startswith("unix://"):
        conn = _UnixConnection(host.removeprefix("unix://"), timeout)
    elif host.startswith("tcp://") and not env.get("DOCKER_TLS_VERIFY"):
        conn = http.client.HTTPConnection(host.removeprefix("tcp://").rstrip("/"), timeout=timeout)
    else:
        return None
    try:
        conn.request("GET", "/version")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            return ""
        return str(json.loads(body).get("Version") or "")
    except (OSError, ValueError, AttributeError, http.client.HTTPException):
        return ""
    finally:
        conn.close()
