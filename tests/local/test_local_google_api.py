"""The agent speaks Google's APIs: specs read back from its responses equal what was sent, bad
requests get Google's error code and reason with nothing changed, every response it sends is
valid against Google's schema, and Google's own Compute client drives it unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from mlplane.apis.discovery import load
from mlplane.apis.schema import validate
from mlplane.apis.transport import Transport
from mlplane.model.compute import (
    BackendService,
    ResourceSpec,
    RevisionSettings,
    frontend,
    revision_bundle,
)
from mlplane.model.workload import workload_metadata
from mlplane.providers.local.control import AgentHandle
from mlplane.providers.registry import ProviderSet
from tests.harness import ADMIN, Team
from tests.local.local_helpers import (
    PROJECT,
    REPLICA,
    SERVING_RUNTIME,
    ZONE,
    create,
    resources,
)

pytestmark = pytest.mark.timeout(60)
API = load("compute")


def bundle(rev: str) -> tuple[ResourceSpec, ...]:
    settings = RevisionSettings(
        zone=ZONE, service_account=SERVING_RUNTIME, metadata=workload_metadata(REPLICA),
        check_interval_sec=1, timeout_sec=1, healthy_threshold=1, initial_delay_sec=5,
    )  # fmt: skip
    return revision_bundle("api", rev, settings).resources


@pytest.fixture(scope="module")
def deployed(serving: ProviderSet) -> tuple[ResourceSpec, ...]:
    front = frontend(endpoints_service="models.endpoints.acme-ml.cloud.goog")
    specs = (*bundle("r1"), front.default_backend, front.url_map)
    create(serving, *specs)
    return specs


def raw(agent: AgentHandle, team: Team, method: str, path: str, body: Any = None) -> Any:
    token = team.api(ADMIN).credentials.token()
    return Transport().json(
        method, f"{agent.base_url}/compute/v1/projects/{PROJECT}/{path}", body,
        {"Authorization": f"Bearer {token}"},
    )  # fmt: skip


def test_specs_read_back_from_the_agent_equal_what_was_sent(
    deployed: tuple[ResourceSpec, ...], serving: ProviderSet
) -> None:
    for spec in deployed:
        live = serving.for_kind(spec.KIND).get(spec.key)
        assert live.spec == spec, spec.KIND
        assert spec.matches(live.spec)


def test_every_response_is_valid_against_its_schema(
    deployed: tuple[ResourceSpec, ...], agent: AgentHandle, team: Team
) -> None:
    admin = team.api(ADMIN)
    for spec in deployed:
        resource = {"forwardingRule": "globalForwardingRules"}.get(spec.KIND, spec.COLLECTION)
        params = {"project": PROJECT, spec.KIND: spec.name}
        if "zone" in type(spec).model_fields:
            params["zone"] = ZONE
        method = API.method(f"compute.{resource}.get")
        body = admin.call(method.id, params)
        assert validate(API, method.response or "", body) == [], spec.KIND
        listing = API.method(f"compute.{resource}.list")
        got = admin.call(listing.id, {k: v for k, v in params.items() if k != spec.KIND})
        assert validate(API, listing.response or "", got) == [], spec.KIND
    for resource in ("instances", "instanceGroupManagers"):
        call = f"compute.{resource}.aggregatedList"
        got = admin.call(call, {"project": PROJECT})
        assert validate(API, API.method(call).response or "", got) == [], call
    ops = admin.call("compute.globalOperations.list", {"project": PROJECT})
    assert ops["items"] and validate(API, "OperationList", ops) == []


@pytest.mark.parametrize(
    ("mutate", "code", "reason", "needle"),
    [
        (lambda b: {**b, "bogus": 1}, 400, "invalid", 'Unknown name "bogus"'),
        (lambda b: {**b, "timeoutSec": "soon"}, 400, "invalid", "TYPE_INT32"),
        (lambda b: {k: v for k, v in b.items() if k != "name"}, 400, "invalid", "name"),
        (lambda b: {**b, "loadBalancingScheme": "NOPE"}, 400, "invalid", "TYPE_ENUM"),
    ],
)
def test_bad_bodies_get_googles_error_and_change_nothing(
    deployed: tuple[ResourceSpec, ...], agent: AgentHandle, team: Team, mutate: Any, code: int,
    reason: str, needle: str,
) -> None:  # fmt: skip
    before = resources(team)
    body = mutate(BackendService(name="bad-bes").to_api(PROJECT))
    resp = raw(agent, team, "POST", "global/backendServices", body)
    err = resp.body["error"]
    assert resp.status == code and err["code"] == code, resp.body
    assert needle in err["message"] and err["errors"][0]["reason"] in (reason, "required")
    assert err["status"] == "INVALID_ARGUMENT"
    assert resources(team) == before


def test_a_missing_required_field_is_named(agent: AgentHandle, team: Team) -> None:
    resp = raw(agent, team, "POST", f"zones/{ZONE}/instanceGroupManagers", {"name": "m"})
    assert resp.status == 400 and resp.body["error"]["errors"][0]["reason"] == "required"
    assert "targetSize" in resp.body["error"]["message"]


def test_a_stale_fingerprint_is_412_condition_not_met(
    deployed: tuple[ResourceSpec, ...], agent: AgentHandle, team: Team
) -> None:
    live = raw(agent, team, "GET", "global/urlMaps/mlplane-urlmap").body
    body = {k: v for k, v in live.items() if k != "fingerprint"} | {"fingerprint": "c3RhbGU="}
    resp = raw(agent, team, "PUT", "global/urlMaps/mlplane-urlmap", body)
    assert resp.status == 412 and resp.body["error"]["errors"][0]["reason"] == "conditionNotMet"
    after = raw(agent, team, "GET", "global/urlMaps/mlplane-urlmap").body
    assert after["fingerprint"] == live["fingerprint"]


def test_deleting_a_resource_in_use_is_400_resource_in_use(
    deployed: tuple[ResourceSpec, ...], agent: AgentHandle, team: Team
) -> None:
    resp = raw(agent, team, "DELETE", "global/healthChecks/api-r1-hc")
    err = resp.body["error"]
    assert resp.status == 400 and err["errors"][0]["reason"] == "resourceInUseByAnotherResource"
    assert "is already being used by" in err["message"]
    assert ("healthCheck", "api-r1-hc") in resources(team)


def test_an_unknown_resource_is_404_not_found(agent: AgentHandle, team: Team) -> None:
    resp = raw(agent, team, "GET", "global/urlMaps/nope")
    assert resp.status == 404 and resp.body["error"]["errors"][0]["reason"] == "notFound"
    resp = raw(agent, team, "GET", "global/nothingHere")
    assert resp.status == 404


def test_a_request_without_a_token_is_401_before_its_body_is_read(agent: AgentHandle) -> None:
    resp = Transport().json(
        "POST", f"{agent.base_url}/compute/v1/projects/{PROJECT}/global/urlMaps", {"name": "x"}
    )
    assert resp.status == 401 and resp.body["error"]["status"] == "UNAUTHENTICATED"
    assert "www-authenticate" in resp.headers


def test_googles_compute_client_drives_the_agent(
    deployed: tuple[ResourceSpec, ...], agent: AgentHandle, team: Team
) -> None:
    compute_v1 = pytest.importorskip("google.cloud.compute_v1")
    from google.api_core.client_options import ClientOptions
    from google.api_core.exceptions import Forbidden, NotFound
    from google.oauth2.credentials import Credentials

    def client(cls: Any, who: str) -> Any:
        creds = Credentials(token=team.api(who).credentials.token())
        return cls(credentials=creds, transport="rest",
                   client_options=ClientOptions(api_endpoint=agent.base_url))  # fmt: skip

    templates = client(compute_v1.InstanceTemplatesClient, ADMIN)
    names = {t.name for t in templates.list(project=PROJECT)}
    assert "api-r1-tmpl" in names
    got = templates.get(project=PROJECT, instance_template="api-r1-tmpl")
    assert got.properties.service_accounts[0].email == SERVING_RUNTIME
    migs = client(compute_v1.InstanceGroupManagersClient, ADMIN)
    mig = migs.get(project=PROJECT, zone=ZONE, instance_group_manager="api-r1-mig")
    assert mig.base_instance_name == "srv-api-r1" and mig.named_ports[0].port == 8080
    aggregated = client(compute_v1.InstancesClient, ADMIN).aggregated_list(project=PROJECT)
    scopes = {scope for scope, _ in aggregated}
    assert f"zones/{ZONE}" in scopes
    with pytest.raises(NotFound):
        client(compute_v1.UrlMapsClient, ADMIN).get(project=PROJECT, url_map="nope")
    with pytest.raises(Forbidden, match=r"compute\.urlMaps\.delete"):
        client(compute_v1.UrlMapsClient, "alice@acme.com").delete(
            project=PROJECT, url_map="mlplane-urlmap"
        )
