"""What `mlplane export` creates on an empty project, as typed values: the foundation.

APIs, service accounts, custom roles and bindings (the IamPlan), the resources the bindings are
scoped to (artifact bucket, secrets, image repository, Endpoints service with its first OpenAPI
config), the firewall rule that admits Google's health checkers to the serving port, the global
address and the passive load-balancer stack (default backend service, URL map, target HTTP
proxy, forwarding rule; names and shapes from `frontend()`), the Cloud Build triggers, and the
auxiliary instances and Cloud Run services a project declares. The renderers (Terraform JSON,
a gcloud script) only format these values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlplane.errors import ConfigError
from mlplane.iam.loading import LoadedProject
from mlplane.iam.synthesis import IamPlan, ServiceAccount
from mlplane.model.builds import build_config
from mlplane.model.compute_revision import PATH_MATCHER, URL_MAP, RevisionSettings, frontend
from mlplane.model.images import (
    artifact_registry_host,
    project_images,
    repository_id,
    repository_path,
)

ADDRESS = "mlplane-lb-ip"
FIREWALL = "mlplane-allow-health-checks"
# Google's health checkers and load-balancer front ends (gcp-reference §1.4).
HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
NETWORK = "default"
ADDRESS_PLACEHOLDER = "@MLPLANE_LB_ADDRESS@"
# APIs every foundation uses, besides those of the model's permissions.
BASE_APIS = (
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "serviceusage.googleapis.com",
    "servicemanagement.googleapis.com",
    "servicecontrol.googleapis.com",
    "endpoints.googleapis.com",
    "compute.googleapis.com",
    "storage.googleapis.com",
    "secretmanager.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "logging.googleapis.com",
    "run.googleapis.com",
)


@dataclass(frozen=True)
class NamedResource:
    """A bucket, secret, repository or Endpoints service: its model ref (`artifacts`), its name,
    and whether the team says it already exists (then it is read, not created)."""

    kind: str  # "bucket" | "secret" | "repository" | "endpointsService"
    ref: str
    name: str
    existing: bool
    location: str = ""


@dataclass(frozen=True)
class LoadBalancer:
    address: str
    default_backend: str
    url_map: str
    path_matcher: str
    proxy: str
    forwarding_rule: str
    port_range: str
    scheme: str
    url_map_body: dict[str, Any]  # the URL map as the Compute API takes it (for import)


@dataclass(frozen=True)
class Firewall:
    name: str
    network: str
    port: int
    source_ranges: tuple[str, ...]
    target_tags: tuple[str, ...]


@dataclass(frozen=True)
class BuildTrigger:
    """A Cloud Build trigger as the BuildTrigger resource (the REST JSON body)."""

    name: str
    event: str  # "manual" | "push"
    runs_as: str  # service-account email
    body: dict[str, Any]


@dataclass(frozen=True)
class AuxInstance:
    name: str
    zone: str
    machine_type: str
    image: str
    service_account: str


@dataclass(frozen=True)
class AuxRunService:
    name: str
    region: str
    image: str
    service_account: str


@dataclass(frozen=True)
class Foundation:
    project: str
    region: str
    zone: str
    apis: tuple[str, ...]
    iam: IamPlan
    resources: tuple[NamedResource, ...]
    openapi: dict[str, dict[str, Any]]  # per Endpoints service; target = ADDRESS_PLACEHOLDER
    firewall: Firewall
    load_balancer: LoadBalancer
    triggers: tuple[BuildTrigger, ...]
    instances: tuple[AuxInstance, ...]
    run_services: tuple[AuxRunService, ...]

    def of_kind(self, kind: str) -> tuple[NamedResource, ...]:
        return tuple(r for r in self.resources if r.kind == kind)

    def resource(self, kind: str, name: str) -> NamedResource | None:
        return next((r for r in self.resources if r.kind == kind and r.name == name), None)

    def openapi_text(self, service: str, address: str = ADDRESS_PLACEHOLDER) -> str:
        """The service's first OpenAPI config (JSON, which Endpoints reads as it reads YAML)."""
        text = json.dumps(self.openapi[service], indent=2)
        return text.replace(ADDRESS_PLACEHOLDER, address)


def _apis(plan: IamPlan) -> tuple[str, ...]:
    used = {p.split(".")[0] + ".googleapis.com" for r in plan.roles for p in r.permissions}
    return tuple(sorted(used | set(BASE_APIS)))


def _resources(loaded: LoadedProject) -> tuple[NamedResource, ...]:
    p = loaded.project
    existing = set(p.resources.existing)
    tables = (
        ("bucket", p.resources.buckets),
        ("secret", p.resources.secrets),
        ("repository", p.resources.repositories),
        ("endpointsService", p.resources.endpoints_services),
    )
    out = []
    for kind, table in tables:
        for ref, template in sorted(table.items()):
            location = p.project.region if kind in ("bucket", "repository") else ""
            out.append(
                NamedResource(kind, ref, p.resolve(template), f"{kind}:{ref}" in existing, location)
            )
    return tuple(out)


def _openapi(service: str) -> dict[str, Any]:
    front = frontend(url_map=URL_MAP, endpoints_service=service, ip_address=ADDRESS_PLACEHOLDER)
    assert front.endpoints_config is not None
    doc: dict[str, Any] = front.endpoints_config.to_api("")
    # Endpoints wants at least one operation; revisions add theirs (/v1/models/NAME/...).
    doc["paths"] = {
        "/healthz": {
            "get": {
                "operationId": "mlplaneHealth",
                "responses": {"200": {"description": "the load balancer answers"}},
            }
        },
        **doc.get("paths", {}),
    }
    return doc


def _load_balancer(project: str) -> LoadBalancer:
    front = frontend(url_map=URL_MAP)
    body = front.url_map.to_api(project)
    for matcher in body.get("pathMatchers", []):  # empty lists are not part of an import
        for key in ("pathRules", "routeRules"):
            if not matcher.get(key):
                matcher.pop(key, None)
    return LoadBalancer(
        address=ADDRESS,
        default_backend=front.default_backend.name,
        url_map=front.url_map.name,
        path_matcher=PATH_MATCHER,
        proxy=front.proxy.name,
        forwarding_rule=front.forwarding_rule.name,
        port_range=front.forwarding_rule.port_range,
        scheme=front.forwarding_rule.load_balancing_scheme,
        url_map_body=body,
    )


def _build(loaded: LoadedProject, trigger: str, image: str) -> dict[str, Any]:
    """The build a trigger runs, fixed in the trigger itself: the same config the local agent
    runs (`model.builds`: mlplane's step for the trigger in the mlplane image, the invoker's
    inputs as substitutions); `build-images` first prepares, builds and pushes every image of
    the project (model.images.project_images) into its Artifact Registry repository."""
    project = loaded.project
    p = project.project
    repository = repository_path(artifact_registry_host(p.region), p.id, repository_id(project))
    build = build_config(trigger, p.id, p.region, "", image=image, repository=repository,
                         images=project_images(project))  # fmt: skip
    build.pop("serviceAccount")  # the trigger's own serviceAccount runs it
    if not build["substitutions"]:
        del build["substitutions"]
    return build


def _triggers(loaded: LoadedProject, accounts: dict[str, ServiceAccount]) -> list[BuildTrigger]:
    p = loaded.project
    image = p.resolve(p.ci.image)
    owner, name = p.ci.repository.removeprefix("https://github.com/").split("/", 1)
    out = []
    for t in loaded.model.triggers:
        email = accounts[t.runs_as].email
        body: dict[str, Any] = {
            "name": t.name,
            "description": t.description[:256],
            "serviceAccount": f"projects/{p.project.id}/serviceAccounts/{email}",
            "build": _build(loaded, t.name, image),
            "tags": ["mlplane"],
        }
        if t.event == "manual":
            # A manual trigger builds the branch it names; its steps are the ones above, not
            # a file the invoker could change on another branch (docs/decisions/0902).
            body["sourceToBuild"] = {
                "uri": p.ci.repository,
                "ref": f"refs/heads/{t.branch or p.ci.branch}",
                "repoType": "GITHUB",
            }
            if t.name in p.ci.approval:
                body["approvalConfig"] = {"approvalRequired": True}
        else:
            body["github"] = {
                "owner": owner,
                "name": name,
                "push": {"branch": f"^{t.branch or p.ci.branch}$"},
            }
        out.append(BuildTrigger(t.name, t.event, email, body))
    return out


def build_foundation(loaded: LoadedProject, plan: IamPlan) -> Foundation:
    p = loaded.project
    accounts = {sa.identity: sa for sa in plan.service_accounts}
    serving = RevisionSettings(zone=p.project.zone, service_account="")
    runtime = accounts["aux-runtime"].email if "aux-runtime" in accounts else ""
    if not runtime and (p.auxiliary.instances or p.auxiliary.run_services):
        raise ConfigError(str(loaded.path), "auxiliary", "needs the identity 'aux-runtime'")
    resources = _resources(loaded)
    return Foundation(
        project=p.project.id,
        region=p.project.region,
        zone=p.project.zone,
        apis=_apis(plan),
        iam=plan,
        resources=resources,
        openapi={r.name: _openapi(r.name) for r in resources if r.kind == "endpointsService"},
        firewall=Firewall(
            FIREWALL, NETWORK, serving.port, HEALTH_CHECK_RANGES, tuple(serving.tags)
        ),
        load_balancer=_load_balancer(p.project.id),
        triggers=tuple(_triggers(loaded, accounts)),
        instances=tuple(
            AuxInstance(
                i.name,
                i.zone or p.project.zone,
                i.machine_type,
                p.resolve(i.image),
                runtime,
            )
            for i in p.auxiliary.instances
        ),
        run_services=tuple(
            AuxRunService(r.name, r.region or p.project.region, p.resolve(r.image), runtime)
            for r in p.auxiliary.run_services
        ),
    )
