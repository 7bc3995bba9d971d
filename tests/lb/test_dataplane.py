"""The data plane as its own process: versioned configuration over its control socket, its own
health probes gating endpoints, adoption by a second client (a restarted agent) with the
listener's port kept and traffic flowing, and a clean shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lb_support import ReplicaServer

from mlplane.providers.local.dataplane.client import DataPlaneClient
from mlplane.providers.local.dataplane.files import alive, read_info
from mlplane.providers.local.dataplane.health import CheckSpec, Health
from mlplane.providers.local.dataplane.protocol import DataPlaneConfig, Listener, ProbeTarget
from mlplane.providers.local.lb import BackendService, Endpoint, UrlMap

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(port: int, replica: int, check: str = "hc") -> DataPlaneConfig:
    svc = BackendService("s", (Endpoint("127.0.0.1", replica, health_check=check),))
    return DataPlaneConfig(
        listeners=(Listener("fr", port, UrlMap("s"), (svc,)),),
        checks=(CheckSpec(check, "/healthz", interval_sec=1, timeout_sec=1, healthy_threshold=1),),
        targets=(ProbeTarget(replica, check, "replica-a:1"),),
    )


def get(port: int, path: str = "/x") -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / ".mlplane" / "agent"
    d.mkdir(parents=True, mode=0o700)
    yield d
    info = read_info(DataPlaneClient(d).files)
    if info is not None and alive(info):
        os.kill(info.pid, 9)


def test_configured_healthy_adopted_and_stopped(
    state_dir: Path, replicas: Callable[[str], ReplicaServer]
) -> None:
    a = replicas("a")
    port = free_port()

    async def first() -> tuple[int, list[str]]:
        dp = DataPlaneClient(state_dir)
        await dp.ensure()
        assert not dp.adopted and dp.info is not None
        assert await dp.apply(config(port, a.port)) == {"fr": ""}
        states: list[str] = []
        while "HEALTHY" not in states:  # its own probe makes the endpoint healthy
            reply = await dp.poll()
            states += [str(h.state) for h in reply.health]
            await asyncio.sleep(0.02)
        dp.close()
        return dp.info.pid, states

    pid, states = asyncio.run(first())
    assert states[-1] == Health.HEALTHY
    assert get(port)[1]["replica"] == "a"

    stop = threading.Event()
    failures: list[object] = []

    def load() -> None:
        while not stop.is_set():
            status = get(port)[0]
            if status != 200:
                failures.append(status)

    worker = threading.Thread(target=load)
    worker.start()
    try:

        async def second() -> None:  # a restarted agent: adopts, re-applies, polls
            dp = DataPlaneClient(state_dir)
            await dp.ensure()
            assert dp.adopted and dp.info is not None and dp.info.pid == pid
            assert await dp.apply(config(port, a.port)) == {"fr": ""}
            reply = await dp.poll()  # since 0: the whole picture
            assert [(h.port, h.state) for h in reply.health] == [(a.port, Health.HEALTHY)]
            assert reply.loads["s"].total > 0
            dp.close()

        asyncio.run(second())
        time.sleep(0.2)
    finally:
        stop.set()
        worker.join()
    assert failures == []

    async def third() -> None:
        dp = DataPlaneClient(state_dir)
        await dp.ensure()
        await dp.shutdown()

    asyncio.run(third())
    info = read_info(DataPlaneClient(state_dir).files)
    assert info is None or not alive(info)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_a_busy_port_is_reported_and_an_invalid_config_keeps_the_running_one(
    state_dir: Path, replicas: Callable[[str], ReplicaServer]
) -> None:
    a = replicas("a")
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]

        async def go() -> None:
            dp = DataPlaneClient(state_dir)
            await dp.ensure()
            try:
                errors = await dp.apply(config(busy, a.port))
                assert errors == {"fr": f"port {busy} on 127.0.0.1 is already in use"}
                assert await dp.apply(config(port, a.port)) == {"fr": ""}
                bad = config(port, a.port, check="hc")
                bad = DataPlaneConfig(bad.listeners, bad.checks, (ProbeTarget(1, "nope", "x"),))
                with pytest.raises(Exception, match="unknown check 'nope'"):
                    await dp.apply(bad)
            finally:
                await dp.shutdown()

        asyncio.run(go())


def test_the_prober_counts_no_late_probe_and_no_refusal_while_a_replica_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scripted probe results: refusals while warming up (within an interval) and a probe that
    was late because the prober was are not failures; real results count as usual."""
    from mlplane.providers.local.dataplane import health

    script = [health.REFUSED, health.REFUSED, health.LATE, health.FAILED, health.OK, health.OK]

    async def scripted(port: int, check: CheckSpec, host: str = "127.0.0.1") -> str:
        return script.pop(0) if script else health.OK

    monkeypatch.setattr(health, "probe", scripted)
    check = CheckSpec("hc", interval_sec=1000, healthy_threshold=2, unhealthy_threshold=1)
    seen: list[tuple[str, int, int]] = []

    async def go() -> None:
        prober = health.Prober(1, check, lambda t: seen.append((t.state, t.successes, t.failures)))
        prober.start()
        while len(seen) < 3:
            await asyncio.sleep(0.01)
        await prober.stop()

    asyncio.run(go())
    assert seen == [("UNHEALTHY", 0, 1), ("UNHEALTHY", 1, 0), ("HEALTHY", 2, 0)]


def test_a_config_survives_its_trip_over_the_control_socket() -> None:
    """What the agent sends is what the data plane applies: URL map (host rules, path rules,
    weighted route rules), services with gated endpoints, checks and targets."""
    from mlplane.providers.local.lb import (
        HostRule,
        PathMatcher,
        PathRule,
        RouteMatch,
        RouteRule,
        WeightedBackendService,
    )

    services = (
        BackendService("a", (Endpoint("127.0.0.1", 8001, True, "hc"),), 12.5, 3.0),
        BackendService("b", (Endpoint("127.0.0.1", 8002, False),)),
    )
    url_map = UrlMap(
        default_service="a",
        host_rules=(HostRule(("*",), "pm"), HostRule(("api.test", "*.x.test"), "paths")),
        path_matchers=(
            PathMatcher(
                "pm",
                default_service="b",
                route_rules=(
                    RouteRule(1, (RouteMatch(prefix_match="/v1/"),), service="a"),
                    RouteRule(
                        2,
                        (RouteMatch(full_path_match="/w"),),
                        weighted_backend_services=(
                            WeightedBackendService("a", 90),
                            WeightedBackendService("b", 10),
                        ),
                    ),
                ),
            ),
            PathMatcher("paths", path_rules=(PathRule(("/p/*", "/q"), "b"),)),
        ),
        name="m",
    )
    config = DataPlaneConfig(
        listeners=(Listener("fr", 8080, url_map, services),),
        checks=(CheckSpec("hc", "/healthz", "h.test", 2.0, 1.0, 3, 4),),
        targets=(ProbeTarget(8001, "hc", "r-1:42"),),
        version=7,
    )
    wire = json.loads(json.dumps(config.to_json()))
    assert DataPlaneConfig.from_json(wire) == config


def test_an_adopting_agent_can_keep_listeners_it_has_not_recovered_yet(
    state_dir: Path, replicas: Callable[[str], ReplicaServer]
) -> None:
    a = replicas("a")
    port = free_port()

    async def go() -> None:
        first = DataPlaneClient(state_dir)
        await first.ensure()
        assert await first.apply(config(port, a.port)) == {"fr": ""}
        first.close()
        second = DataPlaneClient(state_dir)  # a restarted agent, nothing recovered yet
        await second.ensure()
        assert second.adopted and second.inherited == {"fr": port}
        await second.apply(DataPlaneConfig(keep=("fr",)))
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # still listening
        await second.apply(DataPlaneConfig())  # converged: what no rule claims closes
        await asyncio.sleep(0.2)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1)
        await second.shutdown()

    asyncio.run(go())


def test_a_probe_that_passes_while_its_listener_opens_is_not_lost(
    replicas: Callable[[str], ReplicaServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first probe of an already-listening replica can finish while `apply` still awaits
    the listener's socket: the endpoint must end up healthy all the same."""
    from mlplane.providers.local.dataplane.server import DataPlane
    from mlplane.providers.local.lb import LoadBalancer

    a = replicas("a")
    port = free_port()
    start = LoadBalancer.start

    async def slow_start(self: LoadBalancer, port: int = 0) -> int:
        await asyncio.sleep(0.3)  # the probe of `a` passes meanwhile
        return await start(self, port)

    monkeypatch.setattr(LoadBalancer, "start", slow_start)

    async def go() -> int:
        dp = DataPlane()
        await dp.apply(config(port, a.port))
        loop = asyncio.get_running_loop()
        try:
            status = 0
            for _ in range(50):
                status = (await loop.run_in_executor(None, get, port))[0]
                if status == 200:
                    break
                await asyncio.sleep(0.05)
            return status
        finally:
            await dp.stop()

    assert asyncio.run(go()) == 200
