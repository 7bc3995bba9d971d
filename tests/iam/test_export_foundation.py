"""`mlplane export --format terraform`: one configuration that applies to an empty project.

Terraform 1.11 is installed without the google provider (no network), so the configuration is
checked structurally: every binding's target is created or read in the same configuration, by
reference; everything that calls an API depends on that API; the load-balancer chain, the
firewall, the Endpoints config and the triggers are wired as the model says; and the IAM the
configuration implies, read back, is exactly the model's plan."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mlplane.cli.main import main
from mlplane.iam.audit.engine import audit
from mlplane.iam.audit.findings import Severity
from mlplane.iam.audit.terraform_policy import policy_set_from_terraform
from mlplane.iam.export.foundation import build_foundation
from mlplane.iam.export.terraform_foundation import foundation_document
from mlplane.iam.loading import load_project
from mlplane.iam.synthesis import synthesize
from mlplane.model.builds import build_config

REF = re.compile(r"\$\{((?:data\.)?[a-z0-9_]+)\.([A-Za-z0-9_-]+)\.([a-z_]+)\}")
# binding resource type -> the arguments that name its target
TARGET_ARGS = {
    "google_storage_bucket_iam_member": ("bucket",),
    "google_secret_manager_secret_iam_member": ("secret_id",),
    "google_artifact_registry_repository_iam_member": ("repository", "location"),
    "google_endpoints_service_iam_member": ("service_name",),
    "google_service_account_iam_member": ("service_account_id",),
}
EXTRA = """
[[auxiliary.instances]]
name = "aux-neo4j"
image = "neo4j:5"

[[auxiliary.run_services]]
name = "feature-api"
image = "us-docker.pkg.dev/acme-ml/aux/feature-api:1"

[ci]
repository = "https://github.com/acme/ml"
approval = ["deploy", "undeploy"]
"""


def document(project_file: Path, extra: str = EXTRA) -> dict[str, Any]:
    project_file.write_text(project_file.read_text() + extra)
    loaded = load_project(project_file)
    return foundation_document(build_foundation(loaded, synthesize(loaded)))


def declared(doc: dict[str, Any], address: str) -> dict[str, Any] | None:
    parts = address.split(".")
    table = doc.get("data", {}) if parts[0] == "data" else doc["resource"]
    if parts[0] == "data":
        parts = parts[1:]
    body = table.get(parts[0], {}).get(parts[1])
    return body if isinstance(body, dict) else None


def refs(value: str) -> list[str]:
    return [f"{m[1]}.{m[2]}" for m in REF.finditer(value)]


def test_every_binding_target_is_created_or_read_here(project_file: Path) -> None:
    doc = document(project_file)
    seen = 0
    for rtype, entries in doc["resource"].items():
        if not rtype.endswith("_iam_member"):
            continue
        for name, body in entries.items():
            seen += 1
            for r in refs(body["role"]) + refs(body["member"]):
                assert declared(doc, r), (rtype, name, r)
            if rtype == "google_project_iam_member":
                assert body["project"] == doc["provider"]["google"]["project"]
                continue
            for arg in TARGET_ARGS[rtype]:
                value = body[arg]
                assert value.startswith("${") and value.endswith("}"), (rtype, name, arg, value)
                [target] = refs(value)
                assert declared(doc, target), (rtype, name, target)
    assert seen > 40


def test_providers_pinned_and_apis_first(project_file: Path) -> None:
    doc = document(project_file)
    google = doc["terraform"]["required_providers"]["google"]
    assert google["source"] == "hashicorp/google" and google["version"].startswith("~>")
    services = doc["resource"]["google_project_service"]
    apis = {b["service"] for b in services.values()}
    assert {"compute.googleapis.com", "iam.googleapis.com", "cloudbuild.googleapis.com"} <= apis
    assert all(b["disable_on_destroy"] is False for b in services.values())
    for rtype in (
        "google_service_account",
        "google_project_iam_custom_role",
        "google_storage_bucket",
        "google_secret_manager_secret",
        "google_artifact_registry_repository",
        "google_endpoints_service",
        "google_compute_firewall",
        "google_compute_global_address",
        "google_cloudbuild_trigger",
        "google_compute_instance",
        "google_cloud_run_v2_service",
    ):
        for name, body in doc["resource"][rtype].items():
            assert body.get("depends_on"), (rtype, name)
            for dep in body["depends_on"]:
                assert declared(doc, dep), (rtype, name, dep)


def test_the_load_balancer_and_health_checks(project_file: Path) -> None:
    r = document(project_file)["resource"]
    fw = r["google_compute_firewall"]["health_checks"]
    assert sorted(fw["source_ranges"]) == ["130.211.0.0/22", "35.191.0.0/16"]
    assert fw["target_tags"] == ["mlplane-serving"] and fw["allow"][0]["ports"] == ["8080"]
    rule = r["google_compute_global_forwarding_rule"]["lb"]
    assert rule["target"] == "${google_compute_target_http_proxy.lb.id}"
    assert rule["ip_address"] == "${google_compute_global_address.lb.id}"
    assert rule["load_balancing_scheme"] == "EXTERNAL_MANAGED"
    assert r["google_compute_target_http_proxy"]["lb"]["url_map"] == (
        "${google_compute_url_map.lb.id}"
    )
    umap = r["google_compute_url_map"]["lb"]
    assert umap["name"] == "mlplane-urlmap"
    assert umap["default_service"] == "${google_compute_backend_service.default.id}"
    assert umap["path_matcher"][0]["name"] == "models"
    bes = r["google_compute_backend_service"]["default"]
    assert (
        bes["name"] == "mlplane-default-bes" and bes["load_balancing_scheme"] == "EXTERNAL_MANAGED"
    )
    api = json.loads(r["google_endpoints_service"]["models"]["openapi_config"])
    assert api["x-google-endpoints"][0]["target"] == "${google_compute_global_address.lb.address}"
    assert api["host"] == "models.endpoints.acme-ml.cloud.goog" and api["paths"]
    enable = r["google_project_service"]["models_endpoints"]
    assert enable["service"] == "${google_endpoints_service.models.service_name}"


def test_triggers_keep_only_through_the_trigger(project_file: Path) -> None:
    triggers = document(project_file)["resource"]["google_cloudbuild_trigger"]
    assert set(triggers) == {"train", "deploy", "undeploy", "build-images"}
    for name, t in triggers.items():
        assert (
            REF.fullmatch(t["service_account"]) and "google_service_account" in t["service_account"]
        )
        assert t["build"][0]["options"][0]["logging"] == "CLOUD_LOGGING_ONLY"
        assert t["build"][0]["step"], name  # the build is fixed in the trigger
    assert triggers["deploy"]["approval_config"] == [{"approval_required": True}]
    assert "approval_config" not in triggers["train"]
    assert triggers["train"]["source_to_build"][0]["ref"] == "refs/heads/main"
    assert triggers["build-images"]["github"][0]["push"] == [{"branch": "^main$"}]
    # the same build the local agent runs (model.builds): `mlplane ci step TRIGGER ...`
    deploy = triggers["deploy"]["build"][0]
    assert deploy["substitutions"] == build_config("deploy", "p", "r", "sa")["substitutions"]
    assert deploy["step"][0]["args"][:3] == ["ci", "step", "deploy"]


def test_existing_resources_are_read_not_created(project_file: Path) -> None:
    doc = document(
        project_file,
        '\n[resources]\nexisting = ["bucket:artifacts", "endpointsService:models"]\n',
    )
    # the team state's bucket (decision 1500) is not listed existing: it is the one created
    assert list(doc["resource"]["google_storage_bucket"]) == ["state"]
    assert doc["data"]["google_storage_bucket"]["artifacts"]["name"] == "acme-ml-mlplane-artifacts"
    assert "google_endpoints_service" not in doc["resource"]
    assert "models" in doc["data"]["google_endpoints_service_iam_policy"]
    bindings = doc["resource"]["google_storage_bucket_iam_member"].values()
    assert {b["bucket"] for b in bindings} == {
        "${data.google_storage_bucket.artifacts.name}",
        "${google_storage_bucket.state.name}",
    }


def test_the_configuration_implies_exactly_the_plan(project_file: Path) -> None:
    doc = document(project_file)
    plan = synthesize(load_project(project_file))
    report = audit(plan, policy_set_from_terraform(doc, plan.project))
    assert report.at_or_above(Severity.LOW) == ()


def test_cli(project_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "main.tf.json"
    assert main(["-f", str(project_file), "export", "-o", str(out)]) == 0
    assert "google_compute_global_forwarding_rule" in json.loads(out.read_text())["resource"]
    assert main(["-f", str(project_file), "export", "--format", "gcloud"]) == 0
    assert "gcloud compute forwarding-rules create" in capsys.readouterr().out
