"""Live changes under load: config swaps, endpoint removal (draining), a replica killed -9."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from lb_support import ReplicaServer, service

from mlplane.providers.local.lb import (
    BackendService,
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


class Load:
    """N threads sending keep-alive requests until stopped; records every outcome."""

    def __init__(self, port: int, threads: int, paths: list[tuple[str, str]]) -> None:
        self.port = port
        self.paths = paths
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: list[str] = []
        self.replicas: Counter[str] = Counter()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(20)

    def _run(self, i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        n = 0
        while not self.stop.is_set():
            method, path = self.paths[(i + n) % len(self.paths)]
            n += 1
            try:
                body = b'{"x": 1}' if method in ("POST", "PUT") else None
                conn.request(method, path, body=body)
                r = conn.getresponse()
                data = r.read()
                if r.status != 200:
                    raise RuntimeError(f"{method} {path} -> {r.status} {data[:200]!r}")
                with self.lock:
                    self.ok += 1
                    # A HEAD response has no body to tell the replica.
                    self.replicas[json.loads(data)["replica"] if data else method] += 1
            except Exception as exc:
                with self.lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)


def split(a: str, wa: int, b: str, wb: int) -> UrlMap:
    rule = RouteRule(
        10,
        (RouteMatch(prefix_match="/v1/"),),
        weighted_backend_services=(WeightedBackendService(a, wa), WeightedBackendService(b, wb)),
    )
    pm = PathMatcher("pm", a, route_rules=(rule,))
    return UrlMap(a, (HostRule(("*",), "pm"),), (pm,))


def test_live_config_swap_under_load_fails_nothing(replicas: Replicas, make_lb: MakeLb) -> None:
    a, b, c, d = (replicas(n) for n in "abcd")
    svc_a, svc_b, svc_c = service("a", a), service("b", b), service("c", c)
    maps: list[tuple[UrlMap, list[BackendService]]] = [
        (UrlMap("a"), [svc_a]),
        (split("a", 90, "b", 10), [svc_a, svc_b]),
        (split("a", 0, "b", 1000), [svc_a, svc_b]),
        (
            UrlMap(
                "c",
                (HostRule(("*",), "pm"),),
                (PathMatcher("pm", "c", path_rules=(PathRule(("/v1/*",), "b"),)),),
            ),
            [svc_b, svc_c],  # 'a' removed: drains
        ),
        (UrlMap("c"), [service("c", c, d)]),  # endpoint d added
    ]
    lb = make_lb(*maps[0])
    paths = [("GET", "/v1/m"), ("POST", "/v1/p"), ("GET", "/other"), ("PUT", "/v1/u")]
    swaps = 0
    with Load(lb.port, 6, paths) as load:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            url_map, services = maps[swaps % len(maps)]
            lb.call(lambda m=url_map, s=services: lb.lb.apply(m, s))
            if swaps % 3 == 0:  # health pushes between applies
                svc = lb.lb.backend_services[-1]
                lb.call(lambda n=svc.name, e=svc.endpoints: lb.lb.set_endpoints(n, e))
            swaps += 1
            time.sleep(0.03)
    assert not load.failures, load.failures[:5]
    assert load.ok > 200
    assert set(load.replicas) == {"a", "b", "c", "d"}, load.replicas
    assert swaps > 20


def test_replica_killed_9_under_load_no_client_errors(
    replica_process: Callable[[str], tuple[subprocess.Popen[str], int]], make_lb: MakeLb
) -> None:
    (victim, p1), (_, p2) = replica_process("victim"), replica_process("survivor")
    svc = BackendService("s", (Endpoint("127.0.0.1", p1), Endpoint("127.0.0.1", p2)))
    lb = make_lb(UrlMap("s"), [svc])
    paths = [("GET", "/g"), ("HEAD", "/h"), ("GET", "/sleep?s=0.02"), ("DELETE", "/d")]
    with Load(lb.port, 8, paths) as load:
        time.sleep(0.8)
        before = dict(load.replicas)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(5)
        time.sleep(1.7)
        after = Counter(load.replicas)
        after.subtract(before)
    assert before.get("victim", 0) > 20, before  # it was serving before it died
    assert not load.failures, load.failures[:5]
    assert after["survivor"] > 50
    errors = lb.call(lb.lb.metrics_snapshot).services["s"].errors
    assert errors["connect"] + errors["reset"] >= 1, errors


def test_removed_endpoint_drains(replicas: Replicas, make_lb: MakeLb) -> None:
    x, y = replicas("x"), replicas("y")
    lb = make_lb(UrlMap("s"), [service("s", x)])
    # Warm a pooled connection to x, then start a slow request on it.
    assert json.loads(_get(lb.port, "/warm"))["replica"] == "x"
    slow: list[bytes] = []
    t = threading.Thread(target=lambda: slow.append(_get(lb.port, "/sleep?s=1")))
    t.start()
    _wait(lambda: x.count("/sleep") == 1)
    lb.call(lambda: lb.lb.set_endpoints("s", [Endpoint("127.0.0.1", y.port)]))
    for _ in range(5):  # new requests go elsewhere at once
        assert json.loads(_get(lb.port, "/new"))["replica"] == "y"
    t.join(10)
    assert json.loads(slow[0])["replica"] == "x"  # the in-flight request completed
    _wait(lambda: x.open_connections == 0)  # and no connection to x is kept afterwards


def test_draining_timeout_aborts_stragglers(replicas: Replicas, make_lb: MakeLb) -> None:
    x, y = replicas("x"), replicas("y")
    lb = make_lb(UrlMap("s"), [service("s", x, connection_draining_timeout_sec=0.2)])
    result: list[int] = []

    def post() -> None:
        c = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=10)
        c.request("POST", "/sleep?s=2", body=b"{}")
        result.append(c.getresponse().status)

    t = threading.Thread(target=post)
    t.start()
    _wait(lambda: x.count("/sleep") == 1)
    t0 = time.monotonic()
    lb.call(lambda: lb.lb.set_endpoints("s", [Endpoint("127.0.0.1", y.port)]))
    t.join(10)
    assert result == [502]  # aborted after the draining timeout, and a POST is not retried
    assert time.monotonic() - t0 < 1.5


def test_removed_service_drains(replicas: Replicas, make_lb: MakeLb) -> None:
    x, y = replicas("x"), replicas("y")
    lb = make_lb(UrlMap("old"), [service("old", x)])
    slow: list[bytes] = []
    t = threading.Thread(target=lambda: slow.append(_get(lb.port, "/sleep?s=0.6")))
    t.start()
    _wait(lambda: x.count("/sleep") == 1)
    lb.call(lambda: lb.lb.apply(UrlMap("new"), [service("new", y)]))
    assert json.loads(_get(lb.port, "/n"))["replica"] == "y"
    t.join(10)
    assert json.loads(slow[0])["replica"] == "x"
    assert "old" not in {s.name for s in lb.lb.backend_services}


def _get(port: int, path: str) -> bytes:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    assert r.status == 200, r.status
    return r.read()


def _wait(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
