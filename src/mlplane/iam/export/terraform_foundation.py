"""The foundation as one Terraform JSON configuration (`mlplane export --format terraform`).

`required_providers` pins the google provider; resources refer to each other by interpolation
(`${google_storage_bucket.artifacts.name}`), so Terraform orders them, and everything that calls
an API depends on that API's `google_project_service`. A resource the team says already exists
(`[resources] existing`) is read with a `data` source instead, and its bindings refer to that.
"""

from __future__ import annotations

import json
from typing import Any

from mlplane.iam.export.common import HEADER
from mlplane.iam.export.foundation import ADDRESS_PLACEHOLDER, Foundation, NamedResource
from mlplane.iam.export.terraform import Targets, lit, terraform_document
from mlplane.model.workload import container_metadata

GOOGLE_PROVIDER = {"source": "hashicorp/google", "version": "~> 6.0"}
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
# Kind -> (resource type, data source type or "" when only a policy can be read)
_TYPES = {
    "bucket": ("google_storage_bucket", "google_storage_bucket"),
    "secret": ("google_secret_manager_secret", "google_secret_manager_secret"),
    "repository": ("google_artifact_registry_repository", "google_artifact_registry_repository"),
    "endpointsService": ("google_endpoints_service", "google_endpoints_service_iam_policy"),
}


def ident(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in text).strip("_") or "r"


def _api(service: str) -> str:
    return f"google_project_service.{ident(service.split('.')[0])}"


class _Doc:
    def __init__(self, f: Foundation) -> None:
        self.f = f
        self.resource: dict[str, dict[str, Any]] = {}
        self.data: dict[str, dict[str, Any]] = {}

    def add(self, rtype: str, name: str, body: dict[str, Any], *apis: str) -> str:
        if apis:
            body = {**body, "depends_on": sorted({_api(a) for a in apis})}
        self.resource.setdefault(rtype, {})[name] = body
        return f"{rtype}.{name}"

    def read(self, dtype: str, name: str, body: dict[str, Any]) -> str:
        self.data.setdefault(dtype, {})[name] = body
        return f"data.{dtype}.{name}"


def _named(doc: _Doc, r: NamedResource) -> dict[str, str]:
    """Create (or read) one bucket / secret / repository / Endpoints service; return the binding
    arguments that name it."""
    f, key = doc.f, ident(r.ref)
    rtype, dtype = _TYPES[r.kind]
    if r.kind == "bucket":
        body: dict[str, Any] = {"name": r.name}
        if r.existing:
            ref = doc.read(dtype, key, body)
        else:
            ref = doc.add(
                rtype,
                key,
                {
                    **body,
                    "project": f.project,
                    "location": r.location.upper(),
                    "uniform_bucket_level_access": True,
                    "public_access_prevention": "enforced",
                    "versioning": {"enabled": True},
                },
                "storage.googleapis.com",
            )
        return {"bucket": f"${{{ref}.name}}"}
    if r.kind == "secret":
        body = {"project": f.project, "secret_id": r.name}
        if r.existing:
            ref = doc.read(dtype, key, body)
        else:
            ref = doc.add(
                rtype, key, {**body, "replication": {"auto": {}}}, "secretmanager.googleapis.com"
            )
        return {"project": f.project, "secret_id": f"${{{ref}.secret_id}}"}
    if r.kind == "repository":
        body = {"project": f.project, "location": r.location, "repository_id": r.name}
        if r.existing:
            ref = doc.read(dtype, key, body)
        else:
            body = {**body, "format": "DOCKER", "description": "mlplane images"}
            ref = doc.add(rtype, key, body, "artifactregistry.googleapis.com")
        return {
            "project": f.project,
            "location": f"${{{ref}.location}}",
            "repository": f"${{{ref}.repository_id}}",
        }
    if r.existing:
        ref = doc.read(dtype, key, {"service_name": r.name})
    else:
        openapi = lit(f.openapi_text(r.name)).replace(
            ADDRESS_PLACEHOLDER, "${google_compute_global_address.lb.address}"
        )
        ref = doc.add(
            rtype,
            key,
            {"project": f.project, "service_name": r.name, "openapi_config": openapi},
            "servicemanagement.googleapis.com",
            "endpoints.googleapis.com",
        )
        # A new Endpoints service must be enabled in the project before it serves.
        doc.add(
            "google_project_service",
            f"{key}_endpoints",
            {
                "project": f.project,
                "service": f"${{{ref}.service_name}}",
                "disable_on_destroy": False,
            },
            "serviceusage.googleapis.com",
        )
    return {"service_name": f"${{{ref}.service_name}}"}


def _network(doc: _Doc) -> None:
    f, lb, fw = doc.f, doc.f.load_balancer, doc.f.firewall
    compute = "compute.googleapis.com"
    doc.add(
        "google_compute_firewall",
        "health_checks",
        {
            "project": f.project,
            "name": fw.name,
            "network": fw.network,
            "direction": "INGRESS",
            "allow": [{"protocol": "tcp", "ports": [str(fw.port)]}],
            "source_ranges": list(fw.source_ranges),
            "target_tags": list(fw.target_tags),
            "description": "Google's health checkers and load balancers reach serving replicas",
        },
        compute,
    )
    doc.add(
        "google_compute_global_address", "lb", {"project": f.project, "name": lb.address}, compute
    )
    doc.add(
        "google_compute_backend_service",
        "default",
        {
            "project": f.project,
            "name": lb.default_backend,
            "load_balancing_scheme": lb.scheme,
            "protocol": "HTTP",
            "timeout_sec": 30,
        },
        compute,
    )
    default = "${google_compute_backend_service.default.id}"
    doc.add(
        "google_compute_url_map",
        "lb",
        {
            "project": f.project,
            "name": lb.url_map,
            "default_service": default,
            "host_rule": [{"hosts": ["*"], "path_matcher": lb.path_matcher}],
            "path_matcher": [{"name": lb.path_matcher, "default_service": default}],
        },
    )
    doc.add(
        "google_compute_target_http_proxy",
        "lb",
        {"project": f.project, "name": lb.proxy, "url_map": "${google_compute_url_map.lb.id}"},
    )
    doc.add(
        "google_compute_global_forwarding_rule",
        "lb",
        {
            "project": f.project,
            "name": lb.forwarding_rule,
            "target": "${google_compute_target_http_proxy.lb.id}",
            "ip_address": "${google_compute_global_address.lb.id}",
            "ip_protocol": "TCP",
            "port_range": lb.port_range,
            "load_balancing_scheme": lb.scheme,
        },
    )


def _build(build: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "step": [
            {k: lit(v) if isinstance(v, str) else [lit(a) for a in v] for k, v in s.items()}
            for s in build["steps"]
        ],
        "options": [{"logging": build["options"]["logging"]}],
        "timeout": build["timeout"],
        "tags": build["tags"],
    }
    if "substitutions" in build:
        out["substitutions"] = build["substitutions"]
    if "images" in build:
        out["images"] = [lit(i) for i in build["images"]]
    return out


def _triggers(doc: _Doc, sa_refs: dict[str, str]) -> None:
    for t in doc.f.triggers:
        b = t.body
        body: dict[str, Any] = {
            "project": doc.f.project,
            "location": "global",
            "name": t.name,
            "description": lit(b["description"]),
            "service_account": f"${{google_service_account.{sa_refs[t.runs_as]}.id}}",
            "build": [_build(b["build"])],
            "tags": b["tags"],
        }
        if "sourceToBuild" in b:
            s = b["sourceToBuild"]
            body["source_to_build"] = [{"uri": s["uri"], "ref": s["ref"], "repo_type": "GITHUB"}]
        if "approvalConfig" in b:
            body["approval_config"] = [{"approval_required": True}]
        if "github" in b:
            g = b["github"]
            body["github"] = [
                {"owner": g["owner"], "name": g["name"], "push": [{"branch": g["push"]["branch"]}]}
            ]
        doc.add("google_cloudbuild_trigger", ident(t.name), body, "cloudbuild.googleapis.com")


def _auxiliary(doc: _Doc, sa_refs: dict[str, str]) -> None:
    f = doc.f
    for i in f.instances:
        metadata = {k: lit(v) for k, v in container_metadata(i.image).items()}
        doc.add(
            "google_compute_instance",
            ident(i.name),
            {
                "project": f.project,
                "name": i.name,
                "zone": i.zone,
                "machine_type": i.machine_type,
                "boot_disk": [{"initialize_params": [{"image": "cos-cloud/cos-stable"}]}],
                "network_interface": [{"network": f.firewall.network}],
                "service_account": [
                    {
                        "email": f"${{google_service_account.{sa_refs[i.service_account]}.email}}",
                        "scopes": SCOPES,
                    }
                ],
                "metadata": metadata,
                "tags": ["mlplane-aux"],
            },
            "compute.googleapis.com",
        )
    for r in f.run_services:
        doc.add(
            "google_cloud_run_v2_service",
            ident(r.name),
            {
                "project": f.project,
                "name": r.name,
                "location": r.region,
                "ingress": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
                "deletion_protection": False,
                "template": [
                    {
                        "service_account": (
                            f"${{google_service_account.{sa_refs[r.service_account]}.email}}"
                        ),
                        "containers": [{"image": lit(r.image)}],
                    }
                ],
            },
            "run.googleapis.com",
        )


def foundation_document(f: Foundation) -> dict[str, Any]:
    doc = _Doc(f)
    for api in f.apis:
        doc.add(
            "google_project_service",
            ident(api.split(".")[0]),
            {"project": f.project, "service": api, "disable_on_destroy": False},
        )
    targets: Targets = {}
    for r in f.resources:
        targets[(r.kind, r.name)] = _named(doc, r)
    _network(doc)
    iam = terraform_document(f.iam, targets, depends_on=[_api("iam.googleapis.com")])
    sa_refs = {
        sa.email: next(
            k
            for k, v in iam["resource"]["google_service_account"].items()
            if v["account_id"] == sa.account_id
        )
        for sa in f.iam.service_accounts
    }
    _triggers(doc, sa_refs)
    _auxiliary(doc, sa_refs)
    for rtype, entries in iam["resource"].items():
        doc.resource.setdefault(rtype, {}).update(entries)
    for entries in doc.resource.get("google_project_iam_custom_role", {}).values():
        entries.setdefault("depends_on", [_api("iam.googleapis.com")])
    out: dict[str, Any] = {
        "//": HEADER.replace("mlplane iam export", "mlplane export") + f" Project: {f.project}.",
        "terraform": {
            "required_version": ">= 1.5",
            "required_providers": {"google": GOOGLE_PROVIDER},
        },
        "provider": {"google": {"project": f.project, "region": f.region, "zone": f.zone}},
        "resource": doc.resource,
    }
    if doc.data:
        out["data"] = doc.data
    return out


def render_foundation_terraform(f: Foundation) -> str:
    return json.dumps(foundation_document(f), indent=2) + "\n"
