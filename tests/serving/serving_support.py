"""Helpers for the model-server tests: server processes, raw HTTP over sockets, test predictors.

The predictor classes here are named by test artifacts as `serving_support:Class`; the server
subprocesses get this directory on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlplane.serving.artifact import FORMAT_LINEAR, Artifact
from mlplane.serving.predictor import InstanceError

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
# An instance for the example sentiment model (clearly positive).
POSITIVE_INSTANCE = {
    "positive_words": 3,
    "negative_words": 0,
    "negations": 0,
    "exclamations": 1,
    "length": 12,
}


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PORT"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), str(HERE)])
    env.update(extra)
    return env


def server_cmd(artifact: Path | str, *args: str) -> list[str]:
    return [sys.executable, "-m", "mlplane.serving", "--artifact", str(artifact), *args]


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    port: int
    ready_line: str
    stderr: list[str] = field(default_factory=list)

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait, return the exit code (SIGKILL and fail loudly if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"server did not exit within {timeout} s of SIGTERM") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def start_server(
    artifact: Path | str, *args: str, env: dict[str, str] | None = None, timeout: float = 10.0
) -> ServerProcess:
    """Start `python -m mlplane.serving` (port 0 unless given); wait for its ready line."""
    if "--port" not in args and (env is None or "PORT" not in env):
        args = (*args, "--port", "0")
    proc = subprocess.Popen(
        server_cmd(artifact, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or server_env(),
        cwd=REPO,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    match = LISTENING.match(line)
    if not match:
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise AssertionError(f"server not ready: stdout {line!r}, stderr {err!r}")
    return ServerProcess(proc, int(match.group(1)), line.strip())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Reader:
    """Reads HTTP responses off one socket (Content-Length framing, as the server sends)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def response(self, head_only: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"connection closed; had {self.buf!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        n = 0 if head_only or status == 100 else int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("connection closed mid-body")
        body, self.buf = self.buf[:n], self.buf[n:]
        return Response(status, headers, body)

    def closed(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection (EOF) within `timeout` with nothing more."""
        self.sock.settimeout(timeout)
        try:
            return not self._fill() and not self.buf
        except ConnectionResetError:
            return True


def request_bytes(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    headers = headers or {}
    framed = body or (method == "POST" and "Transfer-Encoding" not in headers)
    all_headers = {"Content-Length": str(len(body))} if framed else {}
    all_headers.update(headers)
    lines += [f"{k}: {v}" for k, v in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def call(
    port: int, method: str, path: str, payload: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """One request on a fresh connection."""
    body = b"" if payload is None else json.dumps(payload).encode()
    with connect(port) as sock:
        sock.sendall(request_bytes(method, path, body, headers))
        return Reader(sock).response(head_only=method == "HEAD")


def wait_for(predicate: Any, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def linear_manifest(**overrides: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": FORMAT_LINEAR,
        "name": "toy",
        "version": "3",
        "features": ["a", "b"],
        "weights": [2.0, -1.0],
        "bias": 0.5,
    }
    manifest.update(overrides)
    return {k: v for k, v in manifest.items() if v is not None}


class SlowEcho:
    """Test predictor: touches `marker` (from the manifest) on entry, sleeps `delay`, echoes."""

    def __init__(self, delay: float, marker: str | None) -> None:
        self.delay = delay
        self.marker = marker

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> SlowEcho:
        return cls(float(artifact.manifest.get("delay", 0.5)), artifact.manifest.get("marker"))

    def predict(self, instances: list[Any]) -> list[Any]:
        if self.marker:
            Path(self.marker).touch()
        time.sleep(self.delay)
        return [{"echo": inst} for inst in instances]


class WrongCount:
    inline: ClassVar[bool] = True

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> WrongCount:
        return cls()

    def predict(self, instances: list[Any]) -> Any:
        return [] if len(instances) == 1 else None  # too few, or not a list at all


class Failing:
    inline: ClassVar[bool] = True

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Failing:
        if artifact.manifest.get("fail_on_load"):
            raise RuntimeError("weights shape (3,) does not fit (4,)")
        return cls()

    def predict(self, instances: list[Any]) -> list[Any]:
        if instances == [{"bad": True}]:
            raise InstanceError("instances[0].bad", "not allowed")
        raise ZeroDivisionError("bug in the predictor")
