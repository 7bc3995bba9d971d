"""The proxy end to end over real sockets: routing, keep-alive, streaming, limits, errors."""

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
from lb_support import FlakyUpstream, ReplicaServer, raw_exchange, read_response, service

from mlplane.providers.local.lb import (
    BackendService,
    Endpoint,
    HostRule,
    PathMatcher,
    PathRule,
    ProxySettings,
    RouteMatch,
    RouteRule,
    UrlMap,
    WeightedBackendService,
)

Replicas = Callable[[str], ReplicaServer]
MakeLb = Callable[..., Any]


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


def test_size_limits(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    settings = ProxySettings(max_header_bytes=2048, max_request_body_bytes=1000)
    lb = make_lb(UrlMap("a"), [service("a", a)], settings)
    out = raw_exchange(lb.port, b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ")
    assert b'"request body exceeds 1000 bytes"' in out
    chunked = b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"200\r\n" + b"z" * 512 + b"\r\n"
    out = raw_exchange(lb.port, chunked * 1 + b"200\r\n" + b"z" * 512 + b"\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 "), out[:200]
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 4000 + b"\r\n\r\n"
    out = raw_exchange(lb.port, big)
    assert out.startswith(b"HTTP/1.1 431 ") and b"header section too large" in out
    assert request(lb.port, "/ok", "POST", b"q" * 1000)[0] == 200


def test_response_timeout_is_504(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a, timeout_sec=0.3)])
    t0 = time.monotonic()
    status, headers, body = request(lb.port, "/sleep?s=3")
    assert status == 504 and headers["content-type"] == "application/json"
    assert "did not respond within 0.3 s" in json.loads(body)["error"]
    assert time.monotonic() - t0 < 2.0
    snap = lb.call(lb.lb.metrics_snapshot)
    assert snap.services["a"].errors["timeout"] == 1


def test_connect_timeout_is_504(replicas: Replicas, make_lb: MakeLb) -> None:
    # A listener whose accept queue is full: SYNs are dropped, connect() hangs.
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = []
    try:
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(blackhole.getsockname())
            fillers.append(f)
        time.sleep(0.1)
        settings = ProxySettings(connect_timeout_sec=0.3, max_attempts=1)
        svc = service("a")
        svc = type(svc)("a", (Endpoint("127.0.0.1", blackhole.getsockname()[1]),))
        lb = make_lb(UrlMap("a"), [svc], settings)
        t0 = time.monotonic()
        status, _, body = request(lb.port, "/")
        assert status == 504, body
        assert "timed out" in json.loads(body)["error"]
        assert time.monotonic() - t0 < 2.0
    finally:
        for f in fillers:
            f.close()
        blackhole.close()


def test_client_idle_timeout(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("a"), [service("a", a)], ProxySettings(client_idle_timeout_sec=0.3))
    with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _, rest = read_response(s)
        assert status == 200 and rest == b""
        t0 = time.monotonic()
        assert s.recv(10) == b""  # closed by the proxy after ~0.3 s of silence
        assert 0.2 < time.monotonic() - t0 < 2.0
    with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
        assert s.recv(10) == b""


def test_503_when_no_endpoint_is_healthy(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    lb = make_lb(UrlMap("s"), [service("s", a)])
    lb.call(lambda: lb.lb.set_endpoints("s", [Endpoint("127.0.0.1", a.port, healthy=False)]))
    status, headers, body = request(lb.port, "/")
    assert status == 503 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "no healthy endpoint for backend service 's'"
    lb.call(lambda: lb.lb.set_endpoints("s", [Endpoint("127.0.0.1", a.port, healthy=True)]))
    assert request(lb.port, "/")[0] == 200


def test_404_when_nothing_matches(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    pm = PathMatcher("pm", path_rules=(PathRule(("/only",), "a"),))
    lb = make_lb(UrlMap(None, (HostRule(("*",), "pm"),), (pm,)), [service("a", a)])
    status, _, body = request(lb.port, "/elsewhere")
    assert status == 404
    assert "no route for host" in json.loads(body)["error"]
    assert a.count("/elsewhere") == 0
    assert request(lb.port, "/only")[0] == 200


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


def test_retry_policy(replicas: Replicas, make_lb: MakeLb) -> None:
    a, b = replicas("a"), replicas("b")
    lb = make_lb(UrlMap("s"), [service("s", a, b)])
    # POST sent, no response: not retried -> 502, exactly one replica saw it.
    status, _, body = request(lb.port, "/drop", "POST", b"x")
    assert status == 502 and "closed the connection" in json.loads(body)["error"]
    assert a.count("/drop") + b.count("/drop") == 1
    # GET: retried on the other endpoint, then gives up.
    assert request(lb.port, "/drop")[0] == 502
    assert a.count("/drop") + b.count("/drop") == 3
    snap = lb.call(lb.lb.metrics_snapshot)
    assert snap.services["s"].retries == 1 and snap.services["s"].errors["reset"] == 3


def test_connect_failures_are_retried_for_any_method(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # closed again: connections are refused
    svc = service("s", a)
    svc = type(svc)("s", (Endpoint("127.0.0.1", dead_port), *svc.endpoints))
    lb = make_lb(UrlMap("s"), [svc])
    for _ in range(10):
        assert request(lb.port, "/p", "POST", b"{}")[0] == 200
    assert a.count("/p") == 10
    errors = lb.call(lb.lb.metrics_snapshot).services["s"].errors
    assert errors["connect"] >= 1


def test_dead_pooled_connection_is_retried_fresh_for_idempotent_methods(make_lb: MakeLb) -> None:
    flaky = FlakyUpstream()
    try:
        lb = make_lb(UrlMap("f"), [BackendService("f", (Endpoint("127.0.0.1", flaky.port),))])
        assert request(lb.port, "/1")[0] == 200  # conn 1: pooled afterwards
        assert request(lb.port, "/2")[0] == 200  # conn 1 dies on it; retried on a fresh conn 2
        assert flaky.dropped == 1 and flaky.requests == 3
        status, _, body = request(lb.port, "/3", "POST", b"{}")  # conn 2 dies: POST not retried
        assert status == 502 and "before responding" in json.loads(body)["error"]
        assert flaky.dropped == 2 and flaky.requests == 4
    finally:
        flaky.close()


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
