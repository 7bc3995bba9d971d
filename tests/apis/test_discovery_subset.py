"""The shipped discovery subset is what the refresh script makes of Google's documents, and
every request body mlplane sends is valid against Google's schemas for its method."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from mlplane.apis import discovery
from mlplane.apis.discovery import load
from mlplane.apis.schema import validate
from mlplane.model.compute import (
    AttachedDisk,
    AttachedDiskInitializeParams,
    EndpointsConfig,
    EndpointsService,
    Instance,
    InstanceGroupManager,
    Metadata,
    MetadataItem,
    ResourceSpec,
    RevisionSettings,
    ServiceAccount,
    api_paths,
    frontend,
    revision_bundle,
    route_to,
)
from mlplane.model.workload import workload_metadata
from tests.conftest import REPO

PROJECT = "acme-ml"
ENDPOINTS = "models.endpoints.acme-ml.cloud.goog"
# kind -> discovery resource whose methods take it
RESOURCE = {
    "instanceTemplate": "instanceTemplates",
    "instanceGroupManager": "instanceGroupManagers",
    "autoscaler": "autoscalers",
    "healthCheck": "healthChecks",
    "backendService": "backendServices",
    "urlMap": "urlMaps",
    "targetHttpProxy": "targetHttpProxies",
    "forwardingRule": "globalForwardingRules",
    "instance": "instances",
}


def every_spec() -> list[ResourceSpec]:
    """One of each kind, as the workflows build them."""
    settings = RevisionSettings(
        zone="us-central1-a",
        service_account="mlplane-serving-runtime@acme-ml.iam.gserviceaccount.com",
        metadata=workload_metadata(["python", "-m", "mlplane.serving"], artifact="gs://b/m/"),
    )
    bundle = revision_bundle("sentiment", "r1", settings)
    front = frontend(endpoints_service=ENDPOINTS, ip_address="global/addresses/mlplane-ip")
    url_map = front.url_map.with_changes((route_to("sentiment", [(bundle, 100)]),))
    items = workload_metadata(["python", "-m", "mlplane.notebook.launcher"], {"A": "1"})
    vm = Instance(
        name="train-sentiment-abc123",
        zone="us-central1-a",
        machine_type="e2-standard-4",
        disks=(
            AttachedDisk(
                boot=True,
                initialize_params=AttachedDiskInitializeParams(
                    source_image="projects/cos-cloud/global/images/family/cos-stable"
                ),
            ),
        ),
        service_accounts=(
            ServiceAccount(email="mlplane-training-adhoc@acme-ml.iam.gserviceaccount.com"),
        ),
        metadata=Metadata(items=tuple(MetadataItem(key=k, value=v) for k, v in items.items())),
        labels={"mlplane-kind": "training"},
    )
    specs = [*bundle.resources, *front.resources, url_map, vm]
    return [s for s in specs if s is not front.url_map]


@pytest.mark.parametrize("spec", every_spec(), ids=lambda s: f"{s.KIND}/{s.name}")
def test_every_insert_and_update_body_is_valid(spec: ResourceSpec) -> None:
    if spec.API != "compute":
        return  # Endpoints: see the next test
    api = load("compute")
    resource = RESOURCE[spec.KIND]
    body = spec.to_api(PROJECT)
    insert = api.method(f"compute.{resource}.insert")
    assert validate(api, insert.request or "", body, method_id=insert.id) == []
    for verb in ("update", "patch"):
        method = api.methods.get(f"compute.{resource}.{verb}")
        if method is not None:
            fingerprinted = spec.to_api(PROJECT, fingerprint="Zm9v")
            assert validate(api, method.request or "", fingerprinted, method_id=method.id) == []


def test_every_other_body_is_valid() -> None:
    compute = load("compute")
    ports = {"namedPorts": [{"name": "http", "port": 8080}]}
    assert validate(compute, "InstanceGroupsSetNamedPortsRequest", ports) == []
    assert validate(compute, "UrlMapReference", {"urlMap": "global/urlMaps/m"}) == []
    assert validate(compute, "TargetReference", {"target": "global/targetHttpProxies/p"}) == []
    sm = load("servicemanagement")
    service = EndpointsService(name=ENDPOINTS, producer_project_id=PROJECT)
    managed = sm.method("servicemanagement.services.create")
    assert validate(sm, "ManagedService", service.to_api(PROJECT), method_id=managed.id) == []
    front = frontend(endpoints_service=ENDPOINTS)
    assert isinstance(front.endpoints_config, EndpointsConfig)
    config = front.endpoints_config.with_changes((api_paths("sentiment", ENDPOINTS),))
    assert validate(sm, "SubmitConfigSourceRequest", config.config_source()) == []
    rollout = {"serviceName": ENDPOINTS, "trafficPercentStrategy": {"percentages": {"x": 100.0}}}
    assert validate(sm, "Rollout", rollout) == []
    cb = load("cloudbuild")
    run = {"branchName": "main", "substitutions": {"_SERVICE": "sentiment"}}
    assert validate(cb, "RepoSource", run) == []
    iamc = load("iamcredentials")
    token = {"scope": ["https://www.googleapis.com/auth/cloud-platform"], "lifetime": "3600s"}
    assert validate(iamc, "GenerateAccessTokenRequest", token) == []


def test_the_validator_reports_what_google_reports() -> None:
    api = load("compute")
    mig = api.method("compute.instanceGroupManagers.insert")
    errors = validate(api, "InstanceGroupManager", {"name": "m", "nmae": 1, "targetSize": "x"},
                      method_id=mig.id)  # fmt: skip
    text = [e.description for e in errors]
    assert any('Unknown name "nmae"' in t and "Cannot find field" in t for t in text)
    assert any("resource.targetSize" in t and "TYPE_INT32" in t for t in text)
    errors = validate(api, "InstanceGroupManager", {"name": "m"}, method_id=mig.id)
    assert [e.reason for e in errors] == ["required"] and "targetSize" in errors[0].field
    assert validate(api, "BackendService", {"name": "b", "loadBalancingScheme": "NOPE"}) != []


def test_named_ports_are_output_only_on_a_mig_and_sent_apart() -> None:
    api = load("compute")
    assert api.schema("InstanceGroupManager")["properties"]["namedPorts"].get("outputOnly")
    spec = next(s for s in every_spec() if isinstance(s, InstanceGroupManager))
    assert spec.named_ports and "namedPorts" not in spec.to_api(PROJECT)


def test_the_shipped_subset_is_what_the_refresh_script_makes() -> None:
    googleapiclient = pytest.importorskip("googleapiclient")
    import importlib.util

    script = REPO / "scripts" / "refresh_discovery.py"
    spec = importlib.util.spec_from_file_location("refresh", script)
    assert spec is not None and spec.loader is not None
    refresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(refresh)
    documents = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
    shipped = Path(discovery.__file__).parent / "documents"
    for api, wanted in refresh.SUBSET.items():
        made = refresh.subset(json.loads((documents / f"{api}.json").read_bytes()), wanted)
        have = json.loads(gzip.decompress((shipped / f"{api}.json.gz").read_bytes()))
        if made["revision"] != have["revision"]:
            pytest.skip(f"{api}: installed revision {made['revision']}, shipped {have['revision']}")
        assert made == have, f"{api}: run scripts/refresh_discovery.py"
    sources = (shipped / "SOURCE.md").read_text()
    for api, wanted in refresh.SUBSET.items():
        raw = (documents / f"{api}.json").read_bytes()
        made = refresh.subset(json.loads(raw), wanted)
        row = (
            f"| {api} | {made['revision']} | {len(made['methods'])} | {len(made['schemas'])} | "
            f"{hashlib.sha256(raw).hexdigest()} |"
        )
        assert row in sources, f"SOURCE.md: update the row of {api}: {row}"
    shipped_versions = {f"{a}.{v}" for a, v in discovery.VERSIONS.items()} | {
        f"{a}.{v}" for a, vs in discovery.OTHER_VERSIONS.items() for v in vs
    }
    assert set(refresh.SUBSET) == shipped_versions
    assert set(discovery.AGENT_APIS) <= set(discovery.VERSIONS)
