"""A complete project in the loopback fake, made through its own routes with the bodies gcloud
sends for `mlplane export --format gcloud` (fast: no gcloud). tests/iam/test_export_gcloud_real.py
makes the same project with the real gcloud CLI, and checks it with `mlplane up` too."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from mlplane.iam.export.common import condition_description
from mlplane.iam.export.foundation import Foundation
from mlplane.iam.export.gcloud import role_description
from mlplane.iam.synthesis import Scope
from tests.iam.gcloud_fake import Store, dispatch

SEEDER = "seeder-token"  # the token seeding calls carry (the fake refuses unknown tokens)


def call(store: Store, method: str, target: str, body: Any = None) -> Any:
    """One call to the fake, as the seeder; its answer (asserted to be a success)."""
    store.tokens.setdefault(SEEDER, "seeder@example.invalid")
    status, out = dispatch(store, method, target, body if body is not None else {}, SEEDER)
    assert status == 200, (method, target, out)
    return out


def _policy_paths(project: str, scope: Scope) -> tuple[str, str, str]:
    """(get method, get path, set path) of a scope's IAM policy, as gcloud calls them."""
    if scope.kind == "project":
        base = f"/v1/projects/{project}"
        return "POST", f"{base}:getIamPolicy", f"{base}:setIamPolicy"
    if scope.kind == "bucket":
        return "GET", f"/storage/v1/b/{scope.name}/iam", f"/storage/v1/b/{scope.name}/iam"
    base = {
        "secret": f"/v1/projects/{project}/secrets/{scope.name}",
        "repository": f"/v1/projects/{project}/locations/{scope.location}/repositories/"
        f"{scope.name}",
        "endpointsService": f"/v1/services/{scope.name}",
        "serviceAccount": f"/v1/projects/{project}/serviceAccounts/{scope.name}",
    }[scope.kind]
    get = "POST" if scope.kind in ("endpointsService", "serviceAccount") else "GET"
    return get, f"{base}:getIamPolicy", f"{base}:setIamPolicy"


def bind(store: Store, project: str, scope: Scope, role: str, member: str,
         condition: dict[str, str] | None = None) -> None:  # fmt: skip
    """Add one binding to a scope's policy (read, merge, write with the etag, as gcloud)."""
    get, get_path, set_path = _policy_paths(project, scope)
    policy = call(store, get, get_path)
    want: dict[str, Any] = {"role": role, "members": [member]}
    if condition:
        want["condition"] = condition
        policy["version"] = 3
    policy.setdefault("bindings", []).append(want)
    if scope.kind == "bucket":
        call(store, "PUT", set_path, policy)
    else:
        call(store, "POST", set_path, {"policy": policy})


def seed_foundation(store: Store, f: Foundation) -> None:
    """Everything `mlplane export` creates, with every binding of the plan."""
    p = f.project
    for r in f.of_kind("endpointsService"):
        call(store, "POST", "/v1/services", {"serviceName": r.name, "producerProjectId": p})
    apis = [*f.apis, *(r.name for r in f.of_kind("endpointsService"))]
    call(store, "POST", f"/v1/projects/{p}/services:batchEnable", {"serviceIds": apis})
    for sa in f.iam.service_accounts:
        body = {"displayName": sa.display_name, "description": sa.description}
        call(store, "POST", f"/v1/projects/{p}/serviceAccounts",
             {"accountId": sa.account_id, "serviceAccount": body})  # fmt: skip
    for role in f.iam.roles:
        body = {
            "title": role.title,
            "description": role_description(role),
            "includedPermissions": list(role.permissions),
            "stage": "GA",
        }
        call(store, "POST", f"/v1/projects/{p}/roles", {"roleId": role.role_id, "role": body})
    for r in f.resources:
        if r.kind == "bucket":
            call(store, "POST", f"/storage/v1/b?project={p}",
                 {"name": r.name, "location": r.location})  # fmt: skip
        elif r.kind == "secret":
            call(store, "POST", f"/v1/projects/{p}/secrets?secretId={quote(r.name)}",
                 {"replication": {"automatic": {}}})  # fmt: skip
        elif r.kind == "repository":
            call(store, "POST",
                 f"/v1/projects/{p}/locations/{r.location}/repositories?repositoryId={r.name}",
                 {"format": "DOCKER", "description": "mlplane images"})  # fmt: skip
    _network(store, f)
    for b in f.iam.bindings:
        cond = None
        if b.condition is not None:
            cond = {
                "title": b.condition.title,
                "description": condition_description(b),
                "expression": b.condition.expression,
            }
        for member in b.members:
            bind(store, p, b.scope, b.role.name, member, cond)
    for t in f.triggers:
        call(store, "POST", f"/v1/projects/{p}/locations/global/triggers", t.body)
    for i in f.instances:
        call(store, "POST", f"/compute/v1/projects/{p}/zones/{i.zone}/instances",
             {"name": i.name, "machineType": f"zones/{i.zone}/machineTypes/{i.machine_type}",
              "serviceAccounts": [{"email": i.service_account}]})  # fmt: skip
    for s in f.run_services:
        call(store, "POST", f"/v2/projects/{p}/locations/{s.region}/services?serviceId={s.name}",
             {"template": {"serviceAccount": s.service_account,
                           "containers": [{"image": s.image}]}})  # fmt: skip


def _network(store: Store, f: Foundation) -> None:
    p, fw, lb = f.project, f.firewall, f.load_balancer
    g = f"/compute/v1/projects/{p}/global"
    call(store, "POST", f"{g}/firewalls", {
        "name": fw.name, "network": f"projects/{p}/global/networks/{fw.network}",
        "direction": "INGRESS", "allowed": [{"IPProtocol": "tcp", "ports": [str(fw.port)]}],
        "sourceRanges": list(fw.source_ranges), "targetTags": list(fw.target_tags),
    })  # fmt: skip
    call(store, "POST", f"{g}/addresses", {"name": lb.address})
    call(store, "POST", f"{g}/backendServices", {
        "name": lb.default_backend, "loadBalancingScheme": lb.scheme, "protocol": "HTTP",
    })  # fmt: skip
    call(store, "POST", f"{g}/urlMaps", lb.url_map_body)
    call(store, "POST", f"{g}/targetHttpProxies", {
        "name": lb.proxy, "urlMap": f"projects/{p}/global/urlMaps/{lb.url_map}",
    })  # fmt: skip
    call(store, "POST", f"{g}/forwardingRules", {
        "name": lb.forwarding_rule, "IPAddress": f"projects/{p}/global/addresses/{lb.address}",
        "target": f"projects/{p}/global/targetHttpProxies/{lb.proxy}",
        "portRange": lb.port_range, "loadBalancingScheme": lb.scheme,
    })  # fmt: skip
