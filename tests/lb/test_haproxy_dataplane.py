"""The data plane with `--proxy haproxy`: the same DataPlaneConfig served by a supervised
haproxy. Routing as the URL map says, health from our probes through the runtime API (no
reload), reloads under load without a failed request, the autoscalers' load counters, a
stalled supervisor, a crashed haproxy restarted, a clean stop."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lb_support import ReplicaServer

from mlplane.providers.local.dataplane.client import DataPlaneClient
from mlplane.providers.local.dataplane.files import alive, read_info
from mlplane.providers.local.dataplane.haproxy.process import HaproxyProcess, find_haproxy
from mlplane.providers.local.dataplane.haproxy.runtime import call, worker_pid
from mlplane.providers.local.dataplane.health import CheckSpec, Health
from mlplane.providers.local.dataplane.protocol import (
    DataPlaneConfig,
    Listener,
    PollReply,
    ProbeTarget,
)
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

pytestmark = pytest.mark.timeout(90)
CHECK = CheckSpec("hc", "/healthz", interval_sec=0.2, timeout_sec=1, healthy_threshold=1)


def require_haproxy() -> None:
    if find_haproxy() is None:
        if os.environ.get("MLPLANE_REQUIRE_TOOLS") == "1":
            pytest.fail("haproxy is not installed (MLPLANE_REQUIRE_TOOLS=1: required here)")
        pytest.skip("haproxy is not installed (apt-get install -y haproxy)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str = "/x", host: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, str(json.loads(resp.read()).get("replica", ""))
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def svc(name: str, *servers: ReplicaServer) -> BackendService:
    return BackendService(name, tuple(Endpoint("127.0.0.1", s.port, True, "hc") for s in servers))


def checked(port: int, url_map: UrlMap, *services: BackendService) -> DataPlaneConfig:
    ports = sorted({ep.port for s in services for ep in s.endpoints})
    return DataPlaneConfig(
        listeners=(Listener("fr", port, url_map, services),),
        checks=(CHECK,),
        targets=tuple(ProbeTarget(p, "hc", f"replica-{p}:1") for p in ports),
    )


class Plane:
    """A data plane process serving with haproxy, driven from a loop of the test's own."""

    def __init__(self, state_dir: Path) -> None:
        self.client = DataPlaneClient(state_dir, "haproxy")
        self.loop = asyncio.new_event_loop()
        self.hap = HaproxyProcess(state_dir)
        self.health: dict[int, Health] = {}
        self.client_config = DataPlaneConfig()

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def log(self) -> str:
        return self.client.files.log.read_text()[-3000:]

    def apply(self, config: DataPlaneConfig) -> dict[str, str]:
        self.client_config = config
        self.run(self.client.ensure())
        return self.run(self.client.apply(config))  # type: ignore[no-any-return]

    def poll(self) -> PollReply:
        return self.run(self.client.poll())  # type: ignore[no-any-return]

    def wait_healthy(self, n: int) -> None:
        """Until `n` of the probed ports are HEALTHY (the data plane reports transitions)."""
        deadline = time.monotonic() + 20
        while True:
            for h in self.poll().health:
                self.health[h.port] = h.state
            probed = {t.port for t in self.client_config.targets}
            if sum(self.health.get(p) is Health.HEALTHY for p in probed) >= n:
                break
            assert time.monotonic() < deadline, (self.health, self.log())
            time.sleep(0.02)
        time.sleep(0.1)  # the runtime API call follows the probe

    def worker(self) -> int:
        return self.run(worker_pid(self.hap.socket))  # type: ignore[no-any-return]

    def runtime(self, command: str) -> str:
        return self.run(call(self.hap.socket, command))  # type: ignore[no-any-return]


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    require_haproxy()
    d = tmp_path / ".mlplane" / "agent"
    d.mkdir(parents=True, mode=0o700)
    p = Plane(d)
    yield p
    p.run(p.client.shutdown())
    p.loop.close()
    info = read_info(p.client.files)
    if info is not None and alive(info):
        os.kill(info.pid, signal.SIGKILL)


def test_routes_as_the_url_map_says(plane: Plane, replicas: Callable[[str], ReplicaServer]) -> None:
    a, b, c = replicas("a"), replicas("b"), replicas("c")
    url_map = UrlMap(
        default_service="sa",
        host_rules=(
            HostRule(("api.example.com",), "paths"),
            HostRule(("*.example.com",), "routes"),
        ),
        path_matchers=(
            PathMatcher(
                "paths",
                default_service="sb",
                path_rules=(PathRule(("/v1/*", "/exact"), "sc"), PathRule(("/v1/b/*",), "sa")),
            ),
            PathMatcher(
                "routes",
                route_rules=(
                    RouteRule(20, (RouteMatch(prefix_match="/p"),), service="sa"),
                    RouteRule(10, (RouteMatch(prefix_match="/p/q"),), service="sc"),
                    RouteRule(
                        30,
                        (RouteMatch(full_path_match="/split"),),
                        weighted_backend_services=(
                            WeightedBackendService("sb", 50),
                            WeightedBackendService("sc", 50),
                            WeightedBackendService("sa", 0),
                        ),
                    ),
                ),
            ),
        ),
    )
    port = free_port()
    config = checked(port, url_map, svc("sa", a), svc("sb", b), svc("sc", c))
    assert plane.apply(config) == {"fr": ""}
    plane.wait_healthy(3)
    cases = [
        ("api.example.com", "/v1/x", "c"),  # prefix
        ("api.example.com", "/v1/b/x", "a"),  # the longest prefix wins
        ("api.example.com:8080", "/exact", "c"),  # exact path; host with a port
        ("API.example.com", "/other", "b"),  # the matcher's default; hosts ignore case
        ("x.example.com", "/p/q/1", "c"),  # priority 10 before 20
        ("x.example.com", "/p/z", "a"),
        ("x.example.com", "/nothing", "a"),  # no matcher default: the map's
        ("elsewhere.org", "/v1/x", "a"),  # no host rule: the map's default
    ]
    for host, path, want in cases:
        assert get(port, path, host) == (200, want), (host, path)
    split = {get(port, "/split", "x.example.com")[1] for _ in range(60)}
    assert split == {"b", "c"}  # weight 0 never; both halves seen (p of a miss: 2^-59)
    assert get(port, "/_mlplane/health")[0] == 200
    assert get(port, "/_mlplane/nope")[0] == 404


def test_no_route_is_404_and_refusals_name_the_field(plane: Plane) -> None:
    port = free_port()
    url_map = UrlMap(None, (HostRule(("a.test",), "m"),), (PathMatcher("m", "s"),))
    config = DataPlaneConfig(listeners=(Listener("fr", port, url_map, (BackendService("s"),)),))
    assert plane.apply(config) == {"fr": ""}
    assert get(port, "/x", "b.test")[0] == 404
    assert get(port, "/x", "a.test")[0] == 503  # a service without endpoints
    bad = UrlMap(
        "s", (HostRule(("*",), "m"),), (PathMatcher("m", "s", (PathRule(("/a b",), "s"),)),)
    )
    config = DataPlaneConfig(listeners=(Listener("fr", port, bad, (BackendService("s"),)),))
    with pytest.raises(Exception, match="path '/a b'"):
        plane.apply(config)
    assert get(port, "/x", "b.test")[0] == 404  # the running configuration stays
    s = (BackendService("s"),)
    twice = (Listener("fr", port, url_map, s), Listener("fr2", port, url_map, s))
    errors = plane.apply(DataPlaneConfig(listeners=twice))
    assert errors == {"fr": "", "fr2": f"port {port} on 127.0.0.1 is already in use"}


def test_health_gates_through_the_runtime_api_without_a_reload(
    plane: Plane, replicas: Callable[[str], ReplicaServer]
) -> None:
    a, b = replicas("a"), replicas("b")
    port = free_port()
    assert plane.apply(checked(port, UrlMap("s"), svc("s", a, b))) == {"fr": ""}
    plane.wait_healthy(2)
    assert {get(port)[1] for _ in range(20)} == {"a", "b"}
    worker = plane.worker()
    b.shutdown()
    b.server_close()  # its probes fail now: UNHEALTHY after 2 failures
    deadline = time.monotonic() + 20
    while True:
        assert time.monotonic() < deadline
        states = [h for h in plane.poll().health if h.port == b.port]
        if states and states[-1].state is Health.UNHEALTHY:
            break
        time.sleep(0.02)
    time.sleep(0.2)
    assert [get(port) for _ in range(20)] == [(200, "a")] * 20
    assert plane.worker() == worker  # no reload: the same worker
    servers = plane.runtime("show servers state fr.s")
    assert " 0 0 1 1 " in servers or "MAINT" in servers or servers.count("\n") > 2


def keep_alive_load(port: int, results: list[int], stop: threading.Event) -> None:
    """Requests on one persistent connection (a new one only when the proxy closes it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        try:
            conn.request("GET", "/sleep?s=0.005")
            resp = conn.getresponse()
            resp.read()
            results.append(resp.status)
            if resp.will_close:
                conn.close()
        except (OSError, http.client.HTTPException):
            results.append(0)
            conn.close()
    conn.close()


def test_endpoint_changes_under_load_need_no_reload(
    plane: Plane, replicas: Callable[[str], ReplicaServer]
) -> None:
    """Replicas come and go through the runtime API: the same worker, keep-alive connections
    untouched, no failed request."""
    a, b, c = replicas("a"), replicas("b"), replicas("c")
    port = free_port()
    assert plane.apply(checked(port, UrlMap("s"), svc("s", a, b))) == {"fr": ""}
    plane.wait_healthy(2)
    worker = plane.worker()
    stop = threading.Event()
    results: list[int] = []
    threads = [
        threading.Thread(target=keep_alive_load, args=(port, results, stop)) for _ in range(4)
    ]
    for t in threads:
        t.start()
    try:
        for members in [(a, b, c), (b, c), (c, a), (a,), (a, b, c), (b,)]:
            plane.apply(checked(port, UrlMap("s"), svc("s", *members)))
            plane.wait_healthy(len(members))
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert plane.worker() == worker
    assert len(results) > 50
    assert [s for s in results if s != 200] == []
    assert {get(port)[1] for _ in range(10)} == {"b"}
    deadline = time.monotonic() + 20
    while f"e{a.port}" in (state := plane.runtime("show servers state fr.s")):
        assert time.monotonic() < deadline, state  # deleted once its connections are gone
        time.sleep(0.1)
    assert f"e{b.port}" in state and f"e{c.port}" not in state


def test_reloads_under_load_fail_no_request(
    plane: Plane, replicas: Callable[[str], ReplicaServer]
) -> None:
    """Routing changes reload haproxy: a new worker takes the listening socket, the old one
    finishes its requests; no request on a new connection fails."""
    a, b = replicas("a"), replicas("b")
    port = free_port()

    def routed(k: int) -> DataPlaneConfig:
        rules = (PathRule((f"/v{k}/*",), "t"),)
        url_map = UrlMap("s", (HostRule(("*",), "m"),), (PathMatcher("m", "s", rules),))
        return checked(port, url_map, svc("s", a), svc("t", b))

    assert plane.apply(routed(0)) == {"fr": ""}
    plane.wait_healthy(2)
    stop = threading.Event()
    results: list[int] = []

    def load() -> None:
        while not stop.is_set():
            results.append(get(port, "/sleep?s=0.01")[0])

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    pids = {plane.worker()}
    try:
        for k in range(1, 6):
            plane.apply(routed(k))
            pids.add(plane.worker())
            time.sleep(0.2)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert len(pids) == 6  # a new worker each time the routing changed
    assert get(port, "/v5/x")[1] == "b" and get(port, "/v4/x")[1] == "a"
    assert len(results) > 50
    assert [s for s in results if s != 200] == []


def test_load_counters_feed_the_autoscalers(
    plane: Plane, replicas: Callable[[str], ReplicaServer]
) -> None:
    a = replicas("a")
    port = free_port()
    assert plane.apply(checked(port, UrlMap("s"), svc("s", a))) == {"fr": ""}
    plane.wait_healthy(1)
    before = plane.poll().loads.get("s")
    base_total = before.total if before else 0
    base_busy = before.busy if before else 0.0
    n, secs = 8, 0.4
    threads = [threading.Thread(target=get, args=(port, f"/sleep?s={secs}")) for _ in range(n)]
    for t in threads:
        t.start()
    time.sleep(secs / 2)
    during = plane.poll().loads["s"]
    for t in threads:
        t.join()
    time.sleep(0.4)  # a sample after the last request ended
    plane.client.since = 0  # the whole picture (loads of services without traffic too)
    whole = plane.poll().loads["s"]
    assert during.in_flight >= n // 2
    assert whole.total - base_total == n
    assert whole.in_flight == 0
    busy = whole.busy - base_busy  # request-seconds: ~n x secs
    assert 0.6 * n * secs <= busy <= 1.5 * n * secs, busy


def test_a_stalled_supervisor_and_a_crashed_haproxy(
    plane: Plane, replicas: Callable[[str], ReplicaServer]
) -> None:
    a = replicas("a")
    port = free_port()
    assert plane.apply(checked(port, UrlMap("s"), svc("s", a))) == {"fr": ""}
    plane.wait_healthy(1)
    info = plane.client.info
    assert info is not None
    stop = threading.Event()
    results: list[int] = []

    def load() -> None:
        while not stop.is_set():
            results.append(get(port)[0])

    worker = threading.Thread(target=load)
    worker.start()
    try:
        os.kill(info.pid, signal.SIGSTOP)  # the data plane itself stalls for 2 s
        time.sleep(2.0)
        os.kill(info.pid, signal.SIGCONT)
        stalled = len(results)
    finally:
        stop.set()
        worker.join()
    assert stalled > 20 and [s for s in results if s != 200] == []
    master = int(json.loads(plane.hap.info.read_text())["pid"])
    os.kill(master, signal.SIGKILL)  # haproxy crashes: restarted from its configuration
    deadline = time.monotonic() + 20
    while _master(plane) in (0, master) or not _up(port):
        assert time.monotonic() < deadline, plane.log()
        time.sleep(0.05)
    plane.wait_healthy(1)
    assert get(port) == (200, "a")
    plane.run(plane.client.shutdown())
    assert not _up(port)  # stopped by PID with the data plane


def _master(plane: Plane) -> int:
    try:
        return int(json.loads(plane.hap.info.read_text())["pid"])
    except (OSError, ValueError):
        return 0


def _up(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_the_selection_is_checked_where_it_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlplane.errors import ConfigError
    from mlplane.providers.local.agent import daemon
    from mlplane.providers.local.agent.host import AgentSettings

    with pytest.raises(ValueError, match="MLPLANE_AGENT_DATA_PLANE='nginx'"):
        AgentSettings.from_env({"MLPLANE_AGENT_DATA_PLANE": "nginx"})
    env = AgentSettings.from_env({"MLPLANE_AGENT_DATA_PLANE": "haproxy"})
    assert daemon.with_data_plane(AgentSettings(), "python").data_plane == "python"
    monkeypatch.setattr(daemon, "find_haproxy", lambda: None)
    with pytest.raises(ConfigError) as err:
        daemon.with_data_plane(env, "python")  # the environment wins over the project file
    assert str(err.value).startswith("mlplane.toml: local.data_plane: 'haproxy' is selected")
    assert "\n" not in str(err.value)


def test_a_bad_data_plane_in_the_project_file_names_the_field(tmp_path: Path) -> None:
    from mlplane.errors import ConfigError
    from mlplane.iam.loading import load_project

    project = tmp_path / "mlplane.toml"
    project.write_text('[project]\nid = "my-project-1"\n[local]\ndata_plane = "nginx"\n')
    with pytest.raises(ConfigError, match=r"local\.data_plane: Input should be 'python' or"):
        load_project(project)
    project.write_text('[project]\nid = "my-project-1"\n[local]\ndata_plane = "haproxy"\n')
    assert load_project(project).project.local.data_plane == "haproxy"
