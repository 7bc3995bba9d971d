"""Typed specs: GCP naming rules, validation, API JSON, route changes, declared permissions."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from fake_provider import ENDPOINTS, SERVING_SA, bundle, revision_settings
from pydantic import ValidationError

from mlplane.model.compute import (
    SPEC_TYPES,
    DetachBackendService,
    EndpointsConfig,
    ForwardingRule,
    HealthCheck,
    HttpHealthCheck,
    Instance,
    InstanceGroupManager,
    Lifecycle,
    Mutability,
    RemoveRoute,
    ResourceKey,
    SetRoute,
    UrlMap,
    Verb,
    WeightedBackendService,
    api_paths,
    change_from_data,
    change_to_data,
    check_name,
    detach,
    frontend,
    remove_api_paths,
    revision_names,
    route_to,
    spec_from_data,
    spec_to_data,
)

CATALOG = Path(__file__).parents[2] / "src/mlplane/iam/catalog_data/permissions.txt.gz"


@pytest.mark.parametrize("name", ["a", "sentiment-r12-tmpl", "a" * 63, "x1-2"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "A", "1abc", "abc-", "a_b", "a" * 64, "abc\n", "ab.c", "-abc"]
)
def test_invalid_names_are_rejected_whole_string(name: str) -> None:
    with pytest.raises(ValueError):
        check_name(name)


def test_specs_forbid_unknown_fields_and_are_frozen() -> None:
    with pytest.raises(ValidationError, match="extra"):
        HealthCheck(name="hc", http_health_check=HttpHealthCheck(), colour="blue")  # type: ignore[call-arg]
    hc = HealthCheck(name="hc", http_health_check=HttpHealthCheck())
    with pytest.raises(ValidationError):
        hc.name = "other"  # type: ignore[misc]


def test_health_check_timeout_must_not_exceed_interval() -> None:
    with pytest.raises(ValidationError, match="timeoutSec"):
        HealthCheck(
            name="hc", http_health_check=HttpHealthCheck(), check_interval_sec=5, timeout_sec=6
        )


def test_autoscaler_min_over_max_rejected() -> None:
    settings = revision_settings().model_dump()
    with pytest.raises(ValidationError, match="min_replicas"):
        type(revision_settings()).model_validate({**settings, "min_replicas": 9})
    b = bundle()
    policy = {**b.autoscaler.autoscaling_policy.model_dump(), "minNumReplicas": 9}
    with pytest.raises(ValidationError, match=r"minNumReplicas \(9\) exceeds maxNumReplicas \(3\)"):
        type(b.autoscaler).model_validate(
            {**b.autoscaler.model_dump(), "autoscalingPolicy": policy}
        )


def test_base_instance_name_budget() -> None:
    mig = bundle().instance_group_manager
    with pytest.raises(ValidationError, match="baseInstanceName"):
        InstanceGroupManager.model_validate({**mig.model_dump(), "baseInstanceName": "a" * 59})
    assert InstanceGroupManager.model_validate({**mig.model_dump(), "baseInstanceName": "a" * 58})


def test_revision_names_and_length_budget() -> None:
    n = revision_names("sentiment", "r12")
    assert (n.template, n.instance_group_manager, n.autoscaler, n.health_check) == (
        "sentiment-r12-tmpl",
        "sentiment-r12-mig",
        "sentiment-r12-as",
        "sentiment-r12-hc",
    )
    assert n.backend_service == "sentiment-r12-bes" and n.stack == "serving/sentiment/r12"
    assert revision_names("s" * 47, "r123").prefix == "s" * 47 + "-r123"  # 52 chars
    with pytest.raises(ValueError, match="at most 52"):
        revision_names("s" * 48, "r123")
    with pytest.raises(ValueError, match="service name"):
        revision_names("Sentiment", "r1")


def test_to_api_uses_api_field_names_and_qualifies_links() -> None:
    b = bundle()
    mig = b.instance_group_manager.to_api("p1")
    assert mig["baseInstanceName"] == "srv-sentiment-r1"
    assert mig["autoHealingPolicies"][0]["initialDelaySec"] == 300
    assert mig["instanceTemplate"] == (
        "https://www.googleapis.com/compute/v1/projects/p1/global/instanceTemplates/sentiment-r1-tmpl"
    )
    assert "zone" not in mig  # a path parameter, not a body field
    bes = b.backend_service.to_api("p1")
    assert bes["backends"][0]["group"].startswith(
        "https://www.googleapis.com/compute/v1/projects/p1/"
    )
    tmpl = b.template.to_api()
    assert tmpl["properties"]["disks"][0]["initializeParams"]["diskSizeGb"] == "20"  # int64
    assert tmpl["properties"]["machineType"] == "e2-standard-2"
    fr = ForwardingRule(name="fr", target="global/targetHttpProxies/p", ip_address="1.2.3.4")
    assert fr.to_api()["IPAddress"] == "1.2.3.4" and fr.to_api()["IPProtocol"] == "TCP"
    assert fe_url_map().to_api(fingerprint="abc")["fingerprint"] == "abc"
    asp = b.autoscaler.to_api()["autoscalingPolicy"]
    assert asp["loadBalancingUtilization"] == {"utilizationTarget": 0.8}
    assert asp["coolDownPeriodSec"] == 60 and asp["maxNumReplicas"] == 3


def test_instance_machine_type_is_a_url_and_template_rejects_one() -> None:
    vm = Instance(name="nb-alice", zone="us-central1-a", machine_type="n1-standard-4")
    assert vm.to_api()["machineType"] == "zones/us-central1-a/machineTypes/n1-standard-4"
    with pytest.raises(ValidationError, match="NAME only"):
        b = bundle()
        props = {**b.template.properties.model_dump(), "machineType": "zones/z/machineTypes/x"}
        type(b.template).model_validate({"name": "t", "properties": props})


def fe_url_map() -> UrlMap:
    return frontend(endpoints_service=ENDPOINTS).url_map


def _routes(url_map: UrlMap) -> dict[str, tuple[str, ...]]:
    return {r.prefix or "": r.backend_services() for r in url_map.path_matchers[0].route_rules}


def test_route_changes_set_split_detach_remove() -> None:
    r1, r2, other = bundle("sentiment", "r1"), bundle("sentiment", "r2"), bundle("ranker", "r1")
    m = fe_url_map().with_changes([route_to("sentiment", [(r1, 100)])])
    m = m.with_changes([route_to("ranker", [(other, 100)])])
    prios = [r.priority for r in m.path_matchers[0].route_rules]
    assert prios == [10, 20]
    m = m.with_changes([route_to("sentiment", [(r1, 90), (r2, 10)])])
    assert [r.priority for r in m.path_matchers[0].route_rules] == [10, 20]  # kept
    assert _routes(m)["/v1/models/sentiment/"] == (r1.backend_service.link, r2.backend_service.link)
    assert m.references() == tuple(
        sorted(
            [
                ResourceKey("backendService", "mlplane-default-bes"),
                r1.backend_service.key,
                r2.backend_service.key,
                other.backend_service.key,
            ]
        )
    )
    m = detach(r1).apply(m)
    assert isinstance(m, UrlMap)
    rule = m.path_matchers[0].route_rules[0]
    assert rule.service == r2.backend_service.link and rule.route_action is None
    m = m.with_changes([detach(r2)])
    assert list(_routes(m)) == ["/v1/models/ranker/"]
    m = m.with_changes(
        [RemoveRoute(url_map=m.name, path_matcher="models", prefix="/v1/models/ranker/")]
    )
    assert _routes(m) == {}
    assert m.with_changes([detach(r2)]) == m  # idempotent


def test_route_changes_refuse_shadowing_and_bad_targets() -> None:
    b = bundle()
    m = fe_url_map().with_changes([route_to("sentiment", [(b, 100)], prefix="/v1/")])
    with pytest.raises(ValueError, match="shadowed"):
        m.with_changes([route_to("sentiment", [(b, 100)])])
    with pytest.raises(ValueError, match="path matcher"):
        fe_url_map().with_changes([route_to("x", [(b, 100)], path_matcher="nope")])
    with pytest.raises(ValidationError, match="backendServices"):
        WeightedBackendService(backend_service="global/healthChecks/x", weight=1)
    with pytest.raises(ValueError, match="non-zero"):
        SetRoute(
            url_map="m",
            path_matcher="models",
            prefix="/a/",
            backends=(WeightedBackendService(backend_service=b.backend_service.link, weight=0),),
        ).edit(_table())


def _table() -> Any:
    from mlplane.model.compute_lb import RouteTable

    return RouteTable.of(fe_url_map())


def test_url_map_merge_live_keeps_routes_it_does_not_declare() -> None:
    live = fe_url_map().with_changes([route_to("sentiment", [(bundle(), 100)])])
    assert fe_url_map().merge_live(live) == live


def test_openapi_changes_and_merge() -> None:
    cfg = frontend(endpoints_service=ENDPOINTS).endpoints_config
    assert isinstance(cfg, EndpointsConfig)
    with_paths = cfg.with_changes(
        [api_paths("sentiment", ENDPOINTS), api_paths("my-model", ENDPOINTS)]
    )
    ops = {p: item["post"].operation_id for p, item in with_paths.openapi.paths.items()}
    assert ops == {
        "/v1/models/sentiment/predict": "sentimentPredict",
        "/v1/models/my-model/predict": "myModelPredict",
    }
    assert with_paths.to_api()["swagger"] == "2.0"
    assert cfg.merge_live(with_paths) == with_paths
    removed = with_paths.with_changes([remove_api_paths("sentiment", ENDPOINTS)])
    assert list(removed.openapi.paths) == ["/v1/models/my-model/predict"]
    with pytest.raises(ValidationError, match="host"):
        EndpointsConfig(name="other.endpoints.p.cloud.goog", openapi=cfg.openapi)


def test_stored_forms_round_trip() -> None:
    fe = frontend(endpoints_service=ENDPOINTS)
    for spec in (*bundle().resources, *fe.resources):
        assert spec_from_data(spec.KIND, spec_to_data(spec)) == spec
    for change in (route_to("sentiment", [(bundle(), 7)]), detach(bundle()),
                   api_paths("s", ENDPOINTS), remove_api_paths("s", ENDPOINTS)):  # fmt: skip
        assert change_from_data(change_to_data(change)) == change
    assert isinstance(change_from_data(change_to_data(detach(bundle()))), DetachBackendService)


def test_kinds_declare_lifecycle_and_mutability_per_requirements() -> None:
    expected = {
        "instanceTemplate": (Lifecycle.ACTIVE, Mutability.IMMUTABLE),
        "instanceGroupManager": (Lifecycle.ACTIVE, Mutability.DYNAMIC),
        "autoscaler": (Lifecycle.ACTIVE, Mutability.DYNAMIC),
        "healthCheck": (Lifecycle.ACTIVE, Mutability.DYNAMIC),
        "backendService": (Lifecycle.ACTIVE, Mutability.DYNAMIC),
        "instance": (Lifecycle.ACTIVE, Mutability.IMMUTABLE),
        "urlMap": (Lifecycle.PASSIVE, Mutability.DYNAMIC),
        "targetHttpProxy": (Lifecycle.PASSIVE, Mutability.STATIC),
        "forwardingRule": (Lifecycle.PASSIVE, Mutability.STATIC),
        "endpointsService": (Lifecycle.PASSIVE, Mutability.STATIC),
        "endpointsConfig": (Lifecycle.PASSIVE, Mutability.DYNAMIC),
    }
    assert {k: (t.LIFECYCLE, t.MUTABILITY) for k, t in SPEC_TYPES.items()} == expected
    assert bundle().instance_group_manager.references() == (
        ResourceKey("instanceTemplate", "sentiment-r1-tmpl"),
        ResourceKey("healthCheck", "sentiment-r1-hc"),
    )


def test_every_declared_permission_exists_in_the_catalog() -> None:
    catalog = set(gzip.decompress(CATALOG.read_bytes()).decode().split())
    fe = frontend(endpoints_service=ENDPOINTS, ip_address="projects/p/global/addresses/ip")
    vm = Instance(
        name="nb",
        zone="us-central1-a",
        machine_type="n1-standard-4",
        service_accounts=bundle().template.properties.service_accounts,
        source_instance_template="global/instanceTemplates/t",
        network_interfaces=bundle().template.properties.network_interfaces,
    )
    declared: set[str] = set()
    for spec in (*bundle().resources, *fe.resources, vm):
        for verb in Verb:
            for check in spec.permission_checks(verb, "p"):
                declared.update(check.permissions)
    assert declared - catalog == set()
    assert {"iam.serviceAccounts.actAs", "compute.globalAddresses.use"} <= declared


def test_template_create_needs_act_as_on_its_service_account() -> None:
    checks = bundle().template.permission_checks(Verb.CREATE, "p")
    assert checks[0].permissions == (
        "compute.instanceTemplates.create",
        "compute.instanceTemplates.get",
        "compute.globalOperations.get",
    )
    assert checks[1].permissions == ("iam.serviceAccounts.actAs",)
    assert (checks[1].resource.kind, checks[1].resource.name) == ("serviceAccount", SERVING_SA)
    mig = bundle().instance_group_manager.permission_checks(Verb.CREATE, "p")[0].permissions
    assert {
        "compute.instanceGroupManagers.create",
        "compute.instanceTemplates.useReadOnly",
        "compute.healthChecks.useReadOnly",
        "compute.zoneOperations.get",
    } <= set(mig)
    assert bundle().template.permission_checks(Verb.UPDATE, "p") == ()  # immutable


def test_the_kinds_table_matches_every_spec_class() -> None:
    """`mlplane status` reads lifecycles from `model.kinds` without importing the specs."""
    from mlplane.model.compute import SPEC_TYPES
    from mlplane.model.lifecycles import LIFECYCLES

    assert {kind: cls.LIFECYCLE for kind, cls in SPEC_TYPES.items()} == LIFECYCLES
