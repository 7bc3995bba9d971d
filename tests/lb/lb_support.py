"""Helpers for the load balancer tests: stdlib replicas, a loop thread for the LB, raw clients.

Run as a script it serves one replica in its own process (for kill -9 tests):
    python lb_support.py --name a      -> prints the port, then serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from mlplane.providers.local.lb import BackendService, Endpoint

T = TypeVar("T")


class ReplicaServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), ReplicaHandler)
        self.name = name
        self.lock = threading.Lock()
        self.hits: dict[str, int] = {}
        self.peers: set[int] = set()  # client ports of upstream connections seen
        self.open_connections = 0
        self.first_chunk = threading.Event()  # /upload-stream got its first chunk
        self.release = threading.Event()  # /chunked-gated may send the rest
        self.last_headers: dict[str, str] = {}

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits.get(path, 0)


class ReplicaHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ReplicaServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.open_connections += 1
            self.server.peers.add(self.client_address[1])

    def finish(self) -> None:
        super().finish()
        with self.server.lock:
            self.server.open_connections -= 1

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_GET

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _read_body(self, on_chunk: Callable[[bytes], None] | None = None) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.read(2)
                if on_chunk:
                    on_chunk(parts[-1])
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, ctype: str = "application/json", **hdrs: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in hdrs.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self, head: bool = False) -> None:
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        srv = self.server
        with srv.lock:
            srv.hits[url.path] = srv.hits.get(url.path, 0) + 1
            srv.last_headers = dict(self.headers.items())
        path = url.path
        if path == "/drop":
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = self._read_body(lambda _: srv.first_chunk.set())
        if path.startswith("/sleep"):
            time.sleep(float(q.get("s", "1")))
        if path == "/chunked" or path == "/chunked-gated":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            n, size = int(q.get("n", "3")), int(q.get("size", "10"))
            for i in range(n):
                if i == 1 and path == "/chunked-gated" and not srv.release.wait(10):
                    return
                data = bytes([97 + i % 26]) * size
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if path == "/big":
            n = int(q.get("n", "1000000"))
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            piece = b"x" * 65536
            while n > 0:
                self.wfile.write(piece[: min(n, len(piece))])
                n -= min(n, len(piece))
            return
        if path == "/close":
            self.close_connection = True
            self._send(200, b'{"closing": true}', Connection="close")
            return
        info = {
            "replica": srv.name,
            "method": self.command,
            "path": self.path,
            "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "x_forwarded_for": self.headers.get("X-Forwarded-For"),
            "host": self.headers.get("Host"),
        }
        self._send(int(q.get("status", "200")), json.dumps(info).encode())


def service(name: str, *servers: ReplicaServer, **kw: Any) -> BackendService:
    """A backend service whose endpoints are the given in-process replicas."""
    return BackendService(name, tuple(Endpoint("127.0.0.1", s.port) for s in servers), **kw)


def request(
    port: int,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, dict[str, str], bytes]:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def start_replica(name: str) -> ReplicaServer:
    srv = ReplicaServer(name)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return srv


class FlakyUpstream:
    """Answers the first request on each connection and silently drops the connection on the
    second: what a keep-alive upstream that closed an idle connection looks like to a proxy."""

    RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n" + b'{"replica":"f"}'

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.requests = 0
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            for n in range(2):
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                self.requests += 1
                if n == 1:
                    self.dropped += 1
                    return
                conn.sendall(self.RESPONSE)

    def close(self) -> None:
        self.sock.close()


class LoopThread:
    """An event loop in a background thread; the LB lives there, tests talk to it via `run`."""

    def __init__(self) -> None:
        if os.environ.get("MLPLANE_TEST_LOOP") == "uvloop":  # the data plane's loop when installed
            import uvloop

            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 10) -> T:
        fut: Future[T] = Future()

        def wrapper() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(wrapper)
        return fut.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes, read until the server closes (or timeout), return everything read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def read_response(
    sock: socket.socket, buf: bytes = b""
) -> tuple[int, dict[str, str], bytes, bytes]:
    """Read one Content-Length or chunked response; returns (status, headers, body, leftover)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full head: {buf!r}")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}

    def need(n: int) -> None:
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-body")
            buf += chunk

    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                need(len(buf) + 1)
            line, _, buf = buf.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            need(size + 2)
            body, buf = body + buf[:size], buf[size + 2 :]
            if size == 0:
                return status, headers, body, buf
    n = int(headers.get("content-length", "0"))
    need(n)
    return status, headers, buf[:n], buf[n:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="replica")
    args = parser.parse_args()
    srv = ReplicaServer(args.name)
    print(srv.port, flush=True)
    srv.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    sys.exit(main())
