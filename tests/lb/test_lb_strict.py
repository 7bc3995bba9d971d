"""RFC 9112 strictness: framing attacks get 400 and never reach an endpoint; a pooled connection
with unread bytes is never reused (request smuggling through a lenient endpoint); an endpoint's
early 413 reaches the client; the connection cap and slow clients cost no descriptors."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable

import pytest
from lb_support import ReplicaServer, raw_exchange, read_response, service

from mlplane.providers.local.lb import BackendService, Endpoint, ProxySettings, UrlMap

MakeLb = Callable[..., object]


class LenientUpstream:
    """Records every byte it receives and answers each "head" it finds by splitting the stream
    on a blank line, ignoring Content-Length: the kind of lenient server a smuggled request
    fools. Each answer names the request line it answers. `delay` holds back every answer after
    the first on a connection (so it lands in the proxy's pool while the connection is idle)."""

    def __init__(self, delay: float = 0.0, early_413: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.received = b""
        self.lock = threading.Lock()
        self.delay = delay
        self.early_413 = early_413
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
            buf, answered = b"", 0
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                with self.lock:
                    self.received += data
                buf += data
                while b"\r\n\r\n" in buf:
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    line = head.split(b"\r\n", 1)[0]
                    if self.early_413:
                        body = b'{"error":"too large"}'
                        conn.sendall(
                            b"HTTP/1.1 413 Content Too Large\r\nContent-Length: %d\r\n"
                            b"Connection: close\r\n\r\n%s" % (len(body), body)
                        )
                        return
                    if answered and self.delay:
                        time.sleep(self.delay)
                    body = b"answer to " + line
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                    answered += 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def lenient() -> Callable[..., LenientUpstream]:
    made: list[LenientUpstream] = []

    def make(**kw: object) -> LenientUpstream:
        up = LenientUpstream(**kw)  # type: ignore[arg-type]
        made.append(up)
        return up

    yield make  # type: ignore[misc]
    for up in made:
        up.close()


def lb_for(make_lb: MakeLb, port: int, settings: ProxySettings | None = None):  # type: ignore[no-untyped-def]
    svc = BackendService("s", (Endpoint("127.0.0.1", port),))
    return make_lb(UrlMap("s"), [svc], settings)


ATTACKS = {
    "CL+TE": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "duplicate CL": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
    b"Content-Length: 4\r\n\r\nabcd",
    "conflicting CL": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
    b"Content-Length: 5\r\n\r\n",
    "CL list": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\nabcd",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "bare LF": b"GET / HTTP/1.1\r\nHost: x\nX-A: a\r\n\r\n",
    "bare CR": b"GET / HTTP/1.1\r\nHost: x\rX-A: a\r\n\r\n",
    "NUL in value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "NUL in name": b"GET / HTTP/1.1\r\nHost: x\r\nX\x00A: a\r\n\r\n",
    "space in name": b"GET / HTTP/1.1\r\nHost: x\r\nX A: a\r\n\r\n",
    "space before colon": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 4\r\n\r\nabcd",
    "control char in value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "two TE headers": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "space in target": b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad method": b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bare LF in chunk line": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4;a\nb\r\nabcd\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_framing_attacks_get_400_and_never_reach_the_endpoint(
    name: str, lenient: Callable[..., LenientUpstream], make_lb: MakeLb
) -> None:
    up = lenient()
    lb = lb_for(make_lb, up.port)
    out = raw_exchange(lb.port, ATTACKS[name])  # type: ignore[attr-defined]
    assert out.startswith(b"HTTP/1.1 400 "), (name, out[:200])
    time.sleep(0.05)
    with up.lock:
        assert up.received == b"", (name, up.received)


@pytest.mark.parametrize("delay", [0.0, 0.1])
def test_a_request_smuggled_in_a_body_never_reaches_the_next_client(
    delay: float, lenient: Callable[..., LenientUpstream], make_lb: MakeLb
) -> None:
    """The body is legal to us but the lenient endpoint answers it as a second request. That
    answer must not reach anyone: the pooled connection holding it is closed, not reused."""
    up = lenient(delay=delay)
    lb = lb_for(make_lb, up.port)
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    attack = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(smuggled),
        smuggled,
    )
    with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as s:  # type: ignore[attr-defined]
        s.sendall(attack)
        status, _, body, rest = read_response(s)
        assert status == 200 and body == b"answer to POST /a HTTP/1.1" and rest == b""
    time.sleep(delay * 2 + 0.05)  # the second answer has landed in the pool by now
    for i in range(3):
        with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as s:  # type: ignore[attr-defined]
            s.sendall(b"GET /next%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            status, _, body, _ = read_response(s)
            assert body == b"answer to GET /next%d HTTP/1.1" % i, body


def test_the_endpoints_early_413_reaches_the_client(
    lenient: Callable[..., LenientUpstream], make_lb: MakeLb
) -> None:
    """A 20 MiB body the endpoint refuses before reading it: the client gets its 413, not 502."""
    up = lenient(early_413=True)
    lb = lb_for(make_lb, up.port)
    size = 20 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", lb.port), timeout=10) as s:  # type: ignore[attr-defined]

        def send() -> None:
            try:
                s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
                chunk = b"x" * 65536
                for _ in range(size // len(chunk)):
                    s.sendall(chunk)
            except OSError:
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        status, _, body, _ = read_response(s)
        sender.join(10)
    assert status == 413 and b"too large" in body, body


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def wait_fds(target: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while (n := fds()) > target and time.monotonic() < deadline:
        time.sleep(0.05)
    return n


def test_a_thousand_half_open_connections_cost_nothing_once_gone(
    replicas: Callable[[str], ReplicaServer], make_lb: MakeLb
) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a)])
    port = lb.port  # type: ignore[attr-defined]
    assert raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[:12] == (
        b"HTTP/1.1 200"
    )
    baseline = fds()
    held = []
    for _ in range(1000):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
        held.append(s)
    for _ in range(20):  # a legitimate client is served meanwhile
        out = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200"), out[:100]
    for s in held:
        s.close()
    assert wait_fds(baseline) <= baseline


def test_at_the_connection_cap_the_longest_idle_connection_makes_room(
    replicas: Callable[[str], ReplicaServer], make_lb: MakeLb
) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a)], ProxySettings(max_connections=10))
    port = lb.port  # type: ignore[attr-defined]
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(10)]
    try:
        time.sleep(0.1)
        out = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200")
        assert held[0].recv(10) == b""  # the oldest idle one was closed for it
    finally:
        for s in held:
            s.close()
