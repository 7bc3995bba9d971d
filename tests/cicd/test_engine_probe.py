"""Is a Docker engine reachable? Asked on its API socket (GET /version), not by starting the CLI;
here the engine is a loopback stand-in on a unix socket that answers as dockerd does or not."""

from __future__ import annotations

import contextlib
import http.server
import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlplane.providers.local.engine import find_engine


class _Unix(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _handler(status: int, body: dict[str, str]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def address_string(self) -> str:
            return "unix"

        def do_GET(self) -> None:
            data = json.dumps(body).encode() if self.path == "/version" else b"{}"
            self.send_response(status if self.path == "/version" else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def cli(tmp_path: Path) -> str:
    """A `docker` on PATH (never run: the API is asked directly)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker").write_text("#!/bin/sh\nexit 99\n")
    (bindir / "docker").chmod(0o755)
    return str(bindir)


@contextlib.contextmanager
def serve(path: Path, status: int, body: dict[str, str]) -> Iterator[None]:
    server = _Unix(str(path), _handler(status, body))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_an_engine_that_answers_its_version_is_reachable(tmp_path: Path, cli: str) -> None:
    sock = tmp_path / "d.sock"
    env = {"PATH": cli, "DOCKER_HOST": f"unix://{sock}"}
    with serve(sock, 200, {"Version": "26.1.5+dfsg1"}):
        engine = find_engine(env, fresh=True)
        assert engine is not None and engine.version == "26.1.5+dfsg1"
        assert engine.host == f"unix://{sock}" and engine.cli == f"{cli}/docker"


def test_a_socket_that_does_not_answer_as_an_engine_is_not(tmp_path: Path, cli: str) -> None:
    sock = tmp_path / "e.sock"
    env = {"PATH": cli, "DOCKER_HOST": f"unix://{sock}"}
    with serve(sock, 500, {"message": "broken"}):
        assert find_engine(env, fresh=True) is None
    assert find_engine({**env, "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}, fresh=True) is None
    assert find_engine({"PATH": str(tmp_path), "DOCKER_HOST": f"unix://{sock}"}) is None  # no CLI
