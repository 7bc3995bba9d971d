"""The proxy end to end over real sockets: routing, keep-alive, streaming, HTTP/1.0, metrics."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from lb_support import ReplicaServer, raw_exchange, read_response, request, service

from mlplane.providers.local.lb import (
    Endpoint,
    HostRule,
    PathMatcher,
    PathRule,
    RouteMatch,
    RouteRule,
    UrlMap,
    WeightedBackendService,
)

Replicas = Callable[[str], ReplicaServer]
MakeLb = Callable[..., Any]


def test_routes_by_host_and_path(replicas: Replicas, make_lb: MakeLb) -> None:
    a, b = replicas("a"), replicas("b")
    pm = PathMatcher("pm", "a", path_rules=(PathRule(("/b/*",), "b"),))
    url_map = UrlMap("a", (HostRule(("api.local",), "pm"),), (pm,))
    lb = make_lb(url_map, [service("a", a), service("b", b)])
    _, _, body = request(lb.port, "/b/x?y=1", headers={"Host": "api.local"})
    info = json.loads(body)
    assert info["replica"] == "b" and info["path"] == "/b/x?y=1"
    assert info["x_forwarded_for"] == "127.0.0.1" and info["host"] == "api.local"
    assert json.loads(request(lb.port, "/a", headers={"Host": "api.local"})[2])["replica"] == "a"
    # Another host: no host rule matches -> the map's default service.
    assert json.loads(request(lb.port, "/b/x", headers={"Host": "other"})[2])["replica"] == "a"


def test_weighted_split_end_to_end(replicas: Replicas, make_lb: MakeLb) -> None:
    a, b = replicas("a"), replicas("b")
    rule = RouteRule(
        1,
        (RouteMatch(prefix_match="/"),),
        weighted_backend_services=(
            WeightedBackendService("a", 75),
            WeightedBackendService("b", 25),
        ),
    )
    pm = PathMatcher("pm", route_rules=(rule,))
    lb = make_lb(UrlMap(None, (HostRule(("*",), "pm"),), (pm,)), [service("a", a), service("b", b)])
    conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=10)
    counts = Counter(json.loads(request(lb.port, "/", conn=conn)[2])["replica"] for _ in range(400))
    # Expected b: 100, binomial sd ~8.7; 60..140 is > 4.5 sd on each side.
    assert 60 <= counts["b"] <= 140, counts


def test_keep_alive_on_both_sides(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a)])
    conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=10)
    for i in range(30):
        status, _, _ = request(lb.port, f"/k{i}", conn=conn)
        assert status == 200
        if i == 0:
            first_sock = conn.sock
    assert conn.sock is first_sock  # the client connection was kept
    assert len(a.peers) == 1  # one pooled upstream connection carried all 30


def test_upstream_connection_close_is_honoured(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a)])
    conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=10)
    assert request(lb.port, "/close", conn=conn)[0] == 200
    assert request(lb.port, "/after", conn=conn)[0] == 200
    assert len(a.peers) == 2


def test_chunked_request_body_is_streamed(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a)])
    with socket.create_connection(("127.0.0.1", lb.port), timeout=10) as s:
        s.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        # The replica sees the first chunk while the client still holds the rest back.
        assert a.first_chunk.wait(5)
        s.sendall(b"6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
        status, _, body, _ = read_response(s)
    info = json.loads(body)
    assert status == 200 and info["body_len"] == 11
    assert info["body_sha256"] == hashlib.sha256(b"hello world").hexdigest()


def test_chunked_response_is_streamed(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a)])
    with socket.create_connection(("127.0.0.1", lb.port), timeout=10) as s:
        s.sendall(b"GET /chunked-gated?n=3&size=4 HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"aaaa\r\n" not in got:  # first chunk arrives while the replica holds the rest
            got += s.recv(65536)
        assert b"bbbb" not in got
        assert b"transfer-encoding: chunked" in got.lower()
        a.release.set()
        status, _, body, _ = read_response(s, got)
    assert status == 200 and body == b"aaaabbbbcccc"


def test_large_bodies_both_directions(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a)])
    payload = bytes(range(256)) * 12_000  # ~3 MB, Content-Length framed
    status, _, body = request(lb.port, "/up", "PUT", payload)
    info = json.loads(body)
    assert status == 200 and info["body_len"] == len(payload)
    assert info["body_sha256"] == hashlib.sha256(payload).hexdigest()
    status, _, body = request(lb.port, "/big?n=3000000")
    assert status == 200 and body == b"x" * 3_000_000


def test_http10_clients(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a)])
    out = raw_exchange(lb.port, b"GET /ten HTTP/1.0\r\n\r\n")  # read until the proxy closes
    assert out.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in out
    assert b'"path": "/ten"' in out
    with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as s:
        s.sendall(b"GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, _, _ = read_response(s)
        assert status == 200 and headers["connection"] == "keep-alive"
        s.sendall(b"GET /two HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert read_response(s)[0] == 200
    # A chunked upstream response is de-chunked and close-delimited for a 1.0 client.
    out = raw_exchange(lb.port, b"GET /chunked?n=2&size=3 HTTP/1.0\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower() and body == b"aaabbb"


def test_connection_close_and_pipelining(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a)])
    with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as s:
        s.sendall(b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\n")
        _, _, b1, rest = read_response(s)
        _, _, b2, _ = read_response(s, rest)
        assert json.loads(b1)["path"] == "/p1" and json.loads(b2)["path"] == "/p2"
        s.sendall(b"GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, _, _ = read_response(s)
        assert status == 200 and headers["connection"] == "close"
        assert s.recv(10) == b""


def test_expect_100_continue(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a)])
    with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as s:
        s.sendall(
            b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = s.recv(100)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"data")
        status, _, body, _ = read_response(s)
    assert status == 200 and json.loads(body)["body_len"] == 4


def test_least_outstanding_and_health(replicas: Replicas, make_lb: MakeLb) -> None:
    x, y = replicas("x"), replicas("y")
    lb = make_lb(UrlMap("s"), [service("s", x, y)])
    busy: list[bytes] = []
    t = threading.Thread(target=lambda: busy.append(request(lb.port, "/sleep?s=0.8")[2]))
    t.start()
    deadline = time.monotonic() + 5
    while x.count("/sleep") + y.count("/sleep") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    idle_one = "y" if x.count("/sleep") else "x"
    for _ in range(6):  # the endpoint with a request outstanding gets none of these
        assert json.loads(request(lb.port, "/q")[2])["replica"] == idle_one
    t.join(10)
    lb.call(
        lambda: lb.lb.set_endpoints(
            "s", [Endpoint("127.0.0.1", x.port, healthy=False), Endpoint("127.0.0.1", y.port)]
        )
    )
    assert {json.loads(request(lb.port, "/h")[2])["replica"] for _ in range(6)} == {"y"}


def test_sequential_requests_alternate_between_equal_endpoints(
    replicas: Replicas, make_lb: MakeLb
) -> None:
    """Ties go round-robin whether or not the picked endpoint has a pooled connection yet (the
    callback path's pick is the one the coroutine path connects to)."""
    x, y = replicas("x"), replicas("y")
    lb = make_lb(UrlMap("s"), [service("s", x, y)])
    for keep_alive in (False, True):
        seen: Counter[str] = Counter()
        with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as s:
            for _ in range(20):
                if keep_alive:
                    s.sendall(b"GET /rr HTTP/1.1\r\nHost: x\r\n\r\n")
                    seen[json.loads(read_response(s)[2])["replica"]] += 1
                else:
                    out = raw_exchange(
                        lb.port, b"GET /rr HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    )
                    seen[json.loads(out.partition(b"\r\n\r\n")[2])["replica"]] += 1
        assert seen == {"x": 10, "y": 10}, (keep_alive, seen)


def test_tcp_nodelay_on_both_sides(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a)])
    conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=10)
    assert request(lb.port, "/", conn=conn)[0] == 200

    def flags() -> list[int]:
        socks = [c.transport.get_extra_info("socket") for c in lb.lb._clients]
        for ep in lb.lb._services["a"].endpoints.values():
            socks += [c.transport.get_extra_info("socket") for c in ep.idle]
        return [s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in socks]

    got = lb.call(flags)
    assert len(got) == 2 and all(got)


PROM_LINE = r"^[a-z_]+(\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\})? [0-9.e+-]+$"


def test_metrics_endpoint(replicas: Replicas, make_lb: MakeLb) -> None:
    import re

    a = replicas("a")
    lb = make_lb(UrlMap("svc-a"), [service("svc-a", a)])
    conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=10)
    for i in range(7):
        assert request(lb.port, f"/m{i}", conn=conn)[0] == 200
    assert request(lb.port, "/x?status=503", conn=conn)[0] == 503
    status, headers, body = request(lb.port, "/_mlplane/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#"):
            continue
        assert re.match(PROM_LINE, line), line
        name, value = line.rsplit(" ", 1)
        assert (
            name.split("{")[0].removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
            in typed
        )
        samples[name] = float(value)
    svc = 'backend_service="svc-a"'
    assert samples[f'mlplane_lb_requests_total{{{svc},code="2xx"}}'] == 7
    assert samples[f'mlplane_lb_requests_total{{{svc},code="5xx"}}'] == 1
    assert samples[f"mlplane_lb_request_duration_seconds_count{{{svc}}}"] == 8
    buckets = [
        v for k, v in samples.items() if k.startswith("mlplane_lb_request_duration_seconds_b")
    ]
    assert buckets == sorted(buckets) and buckets[-1] == 8
    assert samples[f'mlplane_lb_endpoints{{{svc},healthy="true"}}'] == 1
    assert samples[f"mlplane_lb_in_flight_requests{{{svc}}}"] == 0
    assert a.count("/_mlplane/metrics") == 0  # the reserved prefix never reaches a backend
    status, _, body = request(lb.port, "/_mlplane/nope")
    assert status == 404 and "reserved prefix" in json.loads(body)["error"]
    snap = lb.call(lb.lb.metrics_snapshot)
    assert snap.services["svc-a"].requests["2xx"] == 7
    assert snap.unrouted == {404: 1}


@pytest.mark.parametrize("n_threads", [4])
def test_concurrent_clients_share_the_pool(
    replicas: Replicas, make_lb: MakeLb, n_threads: int
) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a)])
    failures: list[object] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=10)
        for _ in range(50):
            try:
                if request(lb.port, "/c", conn=conn)[0] != 200:
                    failures.append("status")
            except Exception as exc:  # pragma: no cover - reported below
                failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures
    assert a.count("/c") == 200
    assert len(a.peers) <= n_threads
