"""The engine (plan, authorize, journal, apply) driving the local provider with the real IAM
model: bootstrap the front end, deploy a revision, serve through the load balancer, retire it."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlplane.engine import DesiredState, Engine, EngineSettings, StackSpec, StateStore
from mlplane.iam.authorizer import Authorizer
from mlplane.iam.compiled import policy_for
from mlplane.model.compute import (
    FRONTEND_STACK,
    ForwardingRule,
    RevisionSettings,
    api_paths,
    detach,
    frontend,
    remove_api_paths,
    revision_bundle,
    route_to,
)
from mlplane.model.principals import Principal
from mlplane.model.workload import workload_metadata
from mlplane.providers.local.control import AgentHandle
from tests.harness import ADMIN, Team
from tests.local.local_helpers import (
    PROJECT,
    REPLICA,
    SERVING,
    SERVING_RUNTIME,
    ZONE,
    assert_all_gone,
    processes,
    providers_as,
    wait_until,
)
from tests.local.local_helpers import (
    resources as listed,
)

pytestmark = pytest.mark.timeout(60)
ENDPOINTS = "models.endpoints.acme-ml.cloud.goog"


@pytest.fixture(scope="module")
def engine(team: Team, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    store = StateStore(tmp_path_factory.mktemp("engine") / "state.db")
    authorizer = Authorizer(policy_for(team.project_file))
    providers = providers_as(team, "serving")
    yield Engine(store, providers, authorizer, EngineSettings(project=PROJECT))
    store.close()


def test_bootstrap_deploy_serve_and_retire_through_the_engine(
    engine: Engine, agent: AgentHandle, team: Team
) -> None:
    serving = Principal.parse(SERVING)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    front = frontend(endpoints_service=ENDPOINTS)
    resources = tuple(
        r.model_copy(update={"port_range": str(port)}) if isinstance(r, ForwardingRule) else r
        for r in front.resources
    )
    engine.apply(
        DesiredState.of(StackSpec(FRONTEND_STACK, resources)), serving
    ).raise_for_failures()

    settings = RevisionSettings(
        zone=ZONE,
        service_account=SERVING_RUNTIME,
        metadata=workload_metadata(REPLICA),
        check_interval_sec=1,
        timeout_sec=1,
        healthy_threshold=1,
        initial_delay_sec=10,
        min_replicas=2,
        max_replicas=2,
    )
    bundle = revision_bundle("sentiment", "r1", settings)
    changes = (route_to("sentiment", [(bundle, 100)]), api_paths("sentiment", ENDPOINTS))
    deploy = DesiredState.of(StackSpec(bundle.stack, bundle.resources, changes))
    report = engine.apply(deploy, serving)
    report.raise_for_failures()
    assert engine.plan(deploy).empty  # converged: observed == recorded == desired

    url = f"http://127.0.0.1:{port}/v1/models/sentiment/predict"

    def answer() -> dict[str, object] | None:
        try:
            req = urllib.request.Request(url, data=b"{}", method="POST")
            with urllib.request.urlopen(req, timeout=5) as resp:
                data: dict[str, object] = json.loads(resp.read())
                return data
        except OSError:
            return None

    body = wait_until(answer, 15, "the revision to answer through the load balancer")
    assert str(body["instance"]).startswith("srv-sentiment-r1-")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=5) as resp:
        assert "/v1/models/sentiment/predict" in json.loads(resp.read())["paths"]
    ops = team.api(ADMIN).call("compute.globalOperations.list", {"project": PROJECT})["items"]
    assert {op["user"] for op in ops} == {SERVING.removeprefix("serviceAccount:")}
    pids = [r.pid for r in processes(team) if r.group == bundle.instance_group_manager.name]
    assert len(pids) == 2

    retire = DesiredState.of(
        StackSpec(bundle.stack, (), (detach(bundle), remove_api_paths("sentiment", ENDPOINTS)))
    )
    engine.apply(retire, serving).raise_for_failures()
    assert_all_gone([p for p in pids if p])
    left = listed(team)
    assert not {k for k in left if k[1].startswith(("sentiment-r1", "srv-sentiment-r1"))}
    assert ("urlMap", "mlplane-urlmap") in left  # passive resources stay


def test_the_agent_denies_what_the_model_denies_even_without_the_engine(
    team: Team, tmp_path: Path
) -> None:
    """Defense in depth: a developer calling the provider directly cannot deploy a revision."""
    from mlplane.errors import PermissionDenied
    from tests.local.local_helpers import template

    alice = providers_as(team, "alice@acme.com")
    with pytest.raises(PermissionDenied, match=r"DENY user:alice@acme\.com") as err:
        alice.for_kind("instanceTemplate").create(template("alice-tmpl"), request_id="r1")
    assert "compute.instanceTemplates.create" in str(err.value)
    assert "CI trigger 'deploy'" in str(err.value)  # the sanctioned path is named
