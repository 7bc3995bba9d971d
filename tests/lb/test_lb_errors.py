"""Limits, timeouts, error answers and the retry policy, over real sockets."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

from lb_support import FlakyUpstream, ReplicaServer, raw_exchange, read_response, request, service

from mlplane.providers.local.lb import (
    BackendService,
    Endpoint,
    HostRule,
    PathMatcher,
    PathRule,
    ProxySettings,
    UrlMap,
)

Replicas = Callable[[str], ReplicaServer]
MakeLb = Callable[..., Any]


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


def test_client_idle_and_header_timeouts(replicas: Replicas, make_lb: MakeLb) -> None:
    a = replicas("a")
    settings = ProxySettings(client_idle_timeout_sec=0.3, client_header_timeout_sec=0.3)
    lb = make_lb(UrlMap("a"), [service("a", a)], settings)
    with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _, rest = read_response(s)
        assert status == 200 and rest == b""
        assert s.recv(10) == b""  # closed by the proxy after ~0.3 s of silence
    with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
        assert s.recv(10) == b""


def test_a_slow_head_on_a_keep_alive_connection_meets_the_header_timeout(
    replicas: Replicas, make_lb: MakeLb
) -> None:
    a = replicas("a")
    settings = ProxySettings(client_idle_timeout_sec=60, client_header_timeout_sec=0.3)
    lb = make_lb(UrlMap("a"), [service("a", a)], settings)
    with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 200
        s.sendall(b"GET / HTTP/1.1\r\n")  # then nothing more: idle 60 s would allow it
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
