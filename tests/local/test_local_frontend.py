"""The serving front end on the local agent: a revision bundle behind the real load balancer,
health pushed into it, the merged OpenAPI document, fingerprints, busy ports, references,
and the autoscaler resizing a group under real load."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlplane.model.compute import (
    Backend,
    BackendService,
    ForwardingRule,
    Frontend,
    RevisionBundle,
    RevisionSettings,
    UrlMap,
    api_paths,
    frontend,
    revision_bundle,
    route_to,
)
from mlplane.model.workload import workload_metadata
from mlplane.providers.errors import FingerprintConflict, InvalidRequest, ResourceInUse
from mlplane.providers.local.control import AgentHandle
from mlplane.providers.registry import ProviderSet
from tests.harness import ADMIN, Team
from tests.local.local_helpers import (
    REPLICA,
    SERVING_RUNTIME,
    ZONE,
    create,
    group,
    health_check,
    processes,
    providers_as,
    run,
    template,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)
ENDPOINTS = "models.endpoints.acme-ml.cloud.goog"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Deployment:
    front: Frontend
    bundle: RevisionBundle
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def revision(service: str, rev: str, **settings: object) -> RevisionBundle:
    defaults: dict[str, object] = {
        "zone": ZONE,
        "service_account": SERVING_RUNTIME,
        "metadata": workload_metadata(REPLICA),
        "check_interval_sec": 1,
        "timeout_sec": 1,
        "healthy_threshold": 1,
        "unhealthy_threshold": 2,
        "initial_delay_sec": 5,
        "min_replicas": 1,
        "max_replicas": 3,
        "cool_down_period_sec": 1,
    }
    return revision_bundle(service, rev, RevisionSettings(**(defaults | settings)))


def update_url_map(serving: ProviderSet, change: object) -> None:
    provider = serving.for_kind("urlMap")
    live = provider.get(
        UrlMap(name="mlplane-urlmap", default_service="global/backendServices/x").key
    )
    run(serving, "update", live.spec.with_changes((change,)), fingerprint=live.fingerprint)


@pytest.fixture(scope="module")
def deployed(serving: ProviderSet) -> Deployment:
    front = frontend(endpoints_service=ENDPOINTS)
    port = free_port()
    rule = front.forwarding_rule.model_copy(update={"port_range": str(port)})
    bundle = revision("sentiment", "r1")
    create(serving, front.default_backend, *bundle.resources, front.url_map, front.proxy, rule)
    assert front.endpoints_service is not None and front.endpoints_config is not None
    create(serving, front.endpoints_service, front.endpoints_config)
    update_url_map(serving, route_to("sentiment", [(bundle, 1000)]))
    config = serving.for_kind("endpointsConfig").get(front.endpoints_config.key)
    run(
        serving,
        "update",
        config.spec.with_changes((api_paths("sentiment", ENDPOINTS),)),
        fingerprint=None,
    )
    return Deployment(front, bundle, port)


def get(url: str, method: str = "GET") -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def test_requests_reach_the_revision_through_the_load_balancer(
    deployed: Deployment, agent: AgentHandle, serving: ProviderSet
) -> None:
    url = f"{deployed.base}/v1/models/sentiment/predict"
    _, body = wait_until(
        lambda: (r := get(url, "POST"))[0] == 200 and r, 15, "the revision to answer"
    )
    assert (
        str(body["instance"]).startswith("srv-sentiment-r1-")
        and body["path"] == "/v1/models/sentiment/predict"
    )
    assert get(f"{deployed.base}/v1/models/other/predict", "POST")[0] == 503  # default: no backends


def test_the_merged_openapi_document_is_served_by_the_load_balancer(deployed: Deployment) -> None:
    status, doc = get(f"{deployed.base}/openapi.json")
    assert status == 200 and doc["host"] == ENDPOINTS and doc["swagger"] == "2.0"
    assert "post" in doc["paths"]["/v1/models/sentiment/predict"]  # type: ignore[index]


def test_a_stale_url_map_fingerprint_is_a_fingerprint_conflict(
    deployed: Deployment, serving: ProviderSet
) -> None:
    provider = serving.for_kind("urlMap")
    first = provider.get(deployed.front.url_map.key)
    same = first.spec
    run(serving, "update", same, fingerprint=first.fingerprint)
    second = provider.get(deployed.front.url_map.key)
    assert second.fingerprint != first.fingerprint
    with pytest.raises(FingerprintConflict, match="fingerprint"):
        run(serving, "update", same, fingerprint=first.fingerprint)


def test_a_busy_port_is_a_clear_error_naming_the_port(
    deployed: Deployment, serving: ProviderSet, team: Team
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        rule = ForwardingRule(
            name="busy-fr", target=deployed.front.proxy.link, port_range=str(port)
        )
        with pytest.raises(InvalidRequest, match=f"port {port} on 127.0.0.1 is already in use"):
            run(serving, "create", rule)
    admin = providers_as(team, ADMIN)  # the serving account may get, not list
    assert not [v for v in admin.for_kind("forwardingRule").list() if v.spec.name == "busy-fr"]


def test_referenced_front_end_resources_are_in_use(
    deployed: Deployment, serving: ProviderSet
) -> None:
    with pytest.raises(ResourceInUse, match="global/urlMaps/mlplane-urlmap"):
        run(serving, "delete", deployed.bundle.backend_service.key)
    with pytest.raises(ResourceInUse, match="global/targetHttpProxies/mlplane-http-proxy"):
        run(serving, "delete", deployed.front.url_map.key)


def test_health_changes_are_pushed_into_the_load_balancer(
    deployed: Deployment, serving: ProviderSet, tmp_path: Path
) -> None:
    """Without autohealing a failing replica stays, but the backend service stops using it."""
    hc = health_check("lbh-hc")
    tmpl = template("lbh-tmpl", env={"FAIL_DIR": str(tmp_path)})
    mig = group("lbh-mig", tmpl, None, size=2)
    bes = BackendService(
        name="lbh-bes", health_checks=(hc.link,), backends=(Backend(group=mig.instance_group_link),)
    )
    create(serving, hc, tmpl, mig, bes)
    from mlplane.model.compute import SetRoute, WeightedBackendService

    update_url_map(serving, SetRoute(
        url_map="mlplane-urlmap", path_matcher="models", prefix="/lbh/",
        backends=(WeightedBackendService(backend_service=bes.link, weight=1),),
    ))  # fmt: skip
    url = f"{deployed.base}/lbh/x"

    def spread(n: int = 30) -> Counter[str]:
        """Which replicas answered n requests (a refusal answers for none: a starting
        replica's 503 is not a replica)."""
        answers = (get(url) for _ in range(n))
        return Counter(str(body["instance"]) for status, body in answers if status == 200)

    def two() -> Counter[str] | None:
        seen = spread()
        return seen if len(seen) == 2 else None

    both = wait_until(two, 10, "both replicas used")
    sick, well = sorted(both)
    (tmp_path / sick).touch()
    wait_until(lambda: set(spread()) == {well}, 10, f"traffic to leave {sick}")
    (tmp_path / sick).unlink()
    wait_until(lambda: len(spread()) == 2, 10, f"traffic to return to {sick}")


def test_a_stopped_control_plane_neither_stops_traffic_nor_fails_a_replica(
    deployed: Deployment, agent: AgentHandle, team: Team
) -> None:
    """SIGSTOP the agent for 2 s under load: the data plane serves and probes on its own, so
    no request fails and no replica is recreated."""
    url = f"{deployed.base}/v1/models/sentiment/predict"
    wait_until(lambda: get(url, "POST")[0] == 200, 15, "the revision to answer")
    group_name = deployed.bundle.instance_group_manager.name
    before = {r.name: (r.pid, r.restarts) for r in processes(team) if r.group == group_name}
    stop = threading.Event()
    statuses: Counter[int] = Counter()

    def load() -> None:
        while not stop.is_set():
            statuses[get(url, "POST")[0]] += 1

    workers = [threading.Thread(target=load) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.5)
        os.kill(agent.info.pid, signal.SIGSTOP)
        try:
            during = sum(statuses.values())
            time.sleep(2.0)
            during = sum(statuses.values()) - during
        finally:
            os.kill(agent.info.pid, signal.SIGCONT)
        time.sleep(2.5)  # the agent catches up: polls, autohealing decisions
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert set(statuses) == {200}, statuses
    assert during > 0  # traffic flowed while the agent was stopped
    after = {r.name: (r.pid, r.restarts) for r in processes(team) if r.group == group_name}
    assert {name: after.get(name) for name in before} == before  # none recreated


def test_the_autoscaler_scales_out_under_load_and_back_in(deployed: Deployment, team: Team) -> None:
    group_name = deployed.bundle.instance_group_manager.name

    def size() -> int:
        return sum(1 for r in processes(team) if r.group == group_name)

    wait_until(lambda: size() == 1, 15, "min size 1 before the load")
    stop = threading.Event()
    slow = f"{deployed.base}/v1/models/sentiment/slow?s=0.3"

    def load() -> None:
        while not stop.is_set():
            get(slow)

    workers = [threading.Thread(target=load) for _ in range(6)]
    for w in workers:
        w.start()
    try:
        wait_until(lambda: size() == 3, 15, "scale out to max 3")
        params = {"project": "acme-ml", "zone": ZONE,
                  "autoscaler": deployed.bundle.autoscaler.name}  # fmt: skip
        live = team.api(ADMIN).call("compute.autoscalers.get", params)
        assert live["status"] == "ACTIVE" and live["recommendedSize"] == 3
    finally:
        stop.set()
        for w in workers:
            w.join()
    wait_until(lambda: size() == 1, 15, "scale in to min 1")


@pytest.fixture(scope="module", autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    yield
    time.sleep(0)
