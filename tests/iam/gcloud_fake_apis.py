"""The routes of the loopback fake of Google's APIs (tests/iam/gcloud_fake.py), one section per
API: Service Usage, IAM (accounts, roles, policies), Storage, Secret Manager, Artifact Registry,
Compute Engine, Service Management, Cloud Build. Each answers with the JSON shapes gcloud reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from tests.iam.gcloud_fake import (
    COMPUTE,
    PROJECT_NUMBER,
    ApiError,
    Request,
    Store,
    conflict,
    not_found,
    route,
)

# ------------------------------------------------------------------ Service Usage


@route("GET", r"/v1/projects/([^/]+)/services")
def services_list(s: Store, r: Request, m: re.Match[str]) -> Any:
    enabled = [v for k, v in s.resources.items() if k.startswith("services/")]
    return {"services": enabled} if enabled else {}


def _enable(s: Store, name: str) -> None:
    known = name.endswith(".googleapis.com") or f"managed/{name}" in s.resources
    if not known:
        raise ApiError(403, f"Service {name} is not known", "PERMISSION_DENIED")
    s.resources[f"services/{name}"] = {
        "name": f"projects/{PROJECT_NUMBER}/services/{name}",
        "config": {"name": name},
        "state": "ENABLED",
    }


@route("POST", r"/v1/projects/([^/]+)/services:batchEnable")
def services_batch_enable(s: Store, r: Request, m: re.Match[str]) -> Any:
    for name in r.body.get("serviceIds", []):
        _enable(s, name)
    return s.lro(
        "", {"@type": "type.googleapis.com/google.api.serviceusage.v1.BatchEnableServicesResponse"}
    )


@route("POST", r"/v1/projects/([^/]+)/services/([^/:]+):enable")
def services_enable(s: Store, r: Request, m: re.Match[str]) -> Any:
    _enable(s, m[2])
    return s.lro(
        "", {"@type": "type.googleapis.com/google.api.serviceusage.v1.EnableServiceResponse"}
    )


@route("GET", r"/v1/(operations/[^/]+)")
def operation_get(s: Store, r: Request, m: re.Match[str]) -> Any:
    return s.get(m[1])


# ------------------------------------------------------------------ IAM: accounts and roles


def _sa_key(project: str, email: str) -> str:
    return f"iam/{email}"


@route("GET", r"/v1/projects/([^/]+)/serviceAccounts")
def sa_list(s: Store, r: Request, m: re.Match[str]) -> Any:
    accounts = [v for k, v in s.resources.items() if k.startswith("iam/")]
    return {"accounts": accounts} if accounts else {}


@route("POST", r"/v1/projects/([^/]+)/serviceAccounts")
def sa_create(s: Store, r: Request, m: re.Match[str]) -> Any:
    email = f"{r.body['accountId']}@{m[1]}.iam.gserviceaccount.com"
    sa = {
        "name": f"projects/{m[1]}/serviceAccounts/{email}",
        "projectId": m[1],
        "uniqueId": str(100000000000000000000 + next(s.counter)),
        "email": email,
        "oauth2ClientId": "1",
        "etag": "MDEwMjE5MjA=",
        **r.body.get("serviceAccount", {}),
    }
    return s.create(_sa_key(m[1], email), sa)


@route("GET", r"/v1/projects/([^/]+)/serviceAccounts/([^/:]+)")
def sa_get(s: Store, r: Request, m: re.Match[str]) -> Any:
    return s.get(_sa_key(m[1], m[2]))


def _role_key(project: str, role_id: str) -> str:
    return f"projects/{project}/roles/{role_id}"


@route("GET", r"/v1/projects/([^/]+)/roles")
def roles_list(s: Store, r: Request, m: re.Match[str]) -> Any:
    full = r.query.get("view") == "FULL"  # BASIC (the default) leaves out the permissions
    roles = [
        {k: v for k, v in role.items() if full or k != "includedPermissions"}
        for role in s.children(f"projects/{m[1]}/roles/")
        if r.query.get("showDeleted") in ("True", "true") or not role.get("deleted")
    ]
    return {"roles": roles} if roles else {}


@route("POST", r"/v1/projects/([^/]+)/roles")
def roles_create(s: Store, r: Request, m: re.Match[str]) -> Any:
    key = _role_key(m[1], r.body["roleId"])
    if key in s.resources and s.resources[key].get("deleted"):
        raise ApiError(
            400,
            f"You can't create a role with role_id ({r.body['roleId']}) where there is an "
            "existing role with that role_id in a deleted state.",
            "FAILED_PRECONDITION",
        )
    return s.create(key, {"name": key, "etag": "BwX1", **r.body["role"]})


@route("GET", r"/v1/projects/([^/]+)/roles/([^/:]+)")
def roles_get(s: Store, r: Request, m: re.Match[str]) -> Any:
    return s.get(_role_key(m[1], m[2]))


@route("PATCH", r"/v1/projects/([^/]+)/roles/([^/:]+)")
def roles_patch(s: Store, r: Request, m: re.Match[str]) -> Any:
    key = _role_key(m[1], m[2])
    role = s.get(key)
    if role.get("deleted"):
        raise ApiError(400, "You can't update a deleted role.", "FAILED_PRECONDITION")
    mask = r.query.get("updateMask", "")
    for f in mask.split(",") if mask else r.body:
        if f in r.body:
            role[f] = r.body[f]
    s.resources[key] = role
    return role


@route("POST", r"/v1/projects/([^/]+)/roles/([^/:]+):undelete")
def roles_undelete(s: Store, r: Request, m: re.Match[str]) -> Any:
    key = _role_key(m[1], m[2])
    role = s.get(key)
    role.pop("deleted", None)
    s.resources[key] = role
    return role


@route("POST", r"/v1/permissions:queryTestablePermissions")
def testable(s: Store, r: Request, m: re.Match[str]) -> Any:
    return {"permissions": []}


# ------------------------------------------------------------------ IAM policies


def _policy_routes(get: str, set_: str, key: Callable[[re.Match[str]], str]) -> None:
    def getter(s: Store, r: Request, m: re.Match[str]) -> Any:
        k = key(m)
        if not k.startswith("projects/") or "/" in k.removeprefix("projects/"):
            s.get(k)  # the resource must exist
        return s.policy(k)

    def setter(s: Store, r: Request, m: re.Match[str]) -> Any:
        k = key(m)
        if not k.startswith("projects/") or "/" in k.removeprefix("projects/"):
            s.get(k)
        body = r.body.get("policy", r.body)
        return s.set_policy(k, body)

    route(get.split()[0], get.split()[1])(getter)
    route(set_.split()[0], set_.split()[1])(setter)


_policy_routes(
    r"POST /v1/projects/([^/:]+):getIamPolicy",
    r"POST /v1/projects/([^/:]+):setIamPolicy",
    lambda m: f"projects/{m[1]}",
)
_policy_routes(
    r"POST /v1/projects/([^/]+)/serviceAccounts/([^/:]+):getIamPolicy",
    r"POST /v1/projects/([^/]+)/serviceAccounts/([^/:]+):setIamPolicy",
    lambda m: f"iam/{m[2]}",
)
_policy_routes(
    r"GET /storage/v1/b/([^/]+)/iam",
    r"PUT /storage/v1/b/([^/]+)/iam",
    lambda m: f"storage/{m[1]}",
)
_policy_routes(
    r"GET /v1/projects/([^/]+)/secrets/([^/:]+):getIamPolicy",
    r"POST /v1/projects/([^/]+)/secrets/([^/:]+):setIamPolicy",
    lambda m: f"projects/{m[1]}/secrets/{m[2]}",
)
_policy_routes(
    r"GET /v1/projects/([^/]+)/locations/([^/]+)/repositories/([^/:]+):getIamPolicy",
    r"POST /v1/projects/([^/]+)/locations/([^/]+)/repositories/([^/:]+):setIamPolicy",
    lambda m: f"projects/{m[1]}/locations/{m[2]}/repositories/{m[3]}",
)
_policy_routes(
    r"POST /v1/services/([^/:]+):getIamPolicy",
    r"POST /v1/services/([^/:]+):setIamPolicy",
    lambda m: f"managed/{m[1]}",
)


# ------------------------------------------------------------------ Storage, secrets, registry


@route("GET", r"/storage/v1/b/([^/]+)")
def bucket_get(s: Store, r: Request, m: re.Match[str]) -> Any:
    return s.get(f"storage/{m[1]}")


@route("POST", r"/storage/v1/b")
def bucket_create(s: Store, r: Request, m: re.Match[str]) -> Any:
    name = r.body["name"]
    body = {
        "kind": "storage#bucket",
        "id": name,
        "selfLink": f"https://www.googleapis.com/storage/v1/b/{name}",
        "projectNumber": PROJECT_NUMBER,
        "metageneration": "1",
        "etag": "CAE=",
        "timeCreated": "2026-01-01T00:00:00.000Z",
        "updated": "2026-01-01T00:00:00.000Z",
        "storageClass": "STANDARD",
        "locationType": "region",
        **r.body,
    }
    body["location"] = str(body.get("location", "US")).upper()
    return s.create(f"storage/{name}", body)


@route("GET", r"/v1/projects/([^/]+)/secrets/([^/:]+)")
def secret_get(s: Store, r: Request, m: re.Match[str]) -> Any:
    return s.get(f"projects/{m[1]}/secrets/{m[2]}")


@route("POST", r"/v1/projects/([^/]+)/secrets")
def secret_create(s: Store, r: Request, m: re.Match[str]) -> Any:
    key = f"projects/{m[1]}/secrets/{r.query['secretId']}"
    return s.create(
        key, {"name": key, "createTime": "2026-01-01T00:00:00Z", "etag": '"1"', **r.body}
    )


@route("GET", r"/v1/projects/([^/]+)/locations/([^/]+)/repositories/([^/:]+)")
def repo_get(s: Store, r: Request, m: re.Match[str]) -> Any:
    return s.get(f"projects/{m[1]}/locations/{m[2]}/repositories/{m[3]}")


@route("POST", r"/v1/projects/([^/]+)/locations/([^/]+)/repositories")
def repo_create(s: Store, r: Request, m: re.Match[str]) -> Any:
    key = f"projects/{m[1]}/locations/{m[2]}/repositories/{r.query['repositoryId']}"
    repo = s.create(key, {**r.body, "name": key, "createTime": "2026-01-01T00:00:00Z"})
    return s.lro(f"projects/{m[1]}/locations/{m[2]}/", {"@type": "x", **repo})


@route("GET", r"/v1/(projects/[^/]+/locations/[^/]+/operations/[^/]+)")
def located_operation(s: Store, r: Request, m: re.Match[str]) -> Any:
    return s.get(m[1])


# ------------------------------------------------------------------ Compute Engine

_GLOBAL = "firewalls|addresses|backendServices|urlMaps|targetHttpProxies|forwardingRules"


def _compute_op(s: Store, project: str, scope: str, target: str, kind: str) -> dict[str, Any]:
    name = f"operation-{next(s.counter)}"
    link = f"{COMPUTE}projects/{project}/{scope}/operations/{name}"
    op = {
        "kind": "compute#operation",
        "id": str(next(s.counter)),
        "name": name,
        "operationType": kind,
        "targetLink": target,
        "status": "DONE",
        "progress": 100,
        "insertTime": "2026-01-01T00:00:00.000-00:00",
        "selfLink": link,
    }
    if scope.startswith("zones/"):
        op["zone"] = f"{COMPUTE}projects/{project}/{scope}"
    s.resources[f"compute/{project}/{scope}/operations/{name}"] = op
    return op


def _compute_body(project: str, scope: str, coll: str, body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    link = f"{COMPUTE}projects/{project}/{scope}/{coll}/{body['name']}"
    out.update(selfLink=link, id=str(abs(hash(link)) % 10**18), creationTimestamp="2026-01-01")
    out.setdefault("kind", "compute#" + coll.rstrip("s").replace("ie", "y"))
    if coll == "addresses":
        out.setdefault("address", "34.120.10.20")
        out.setdefault("status", "RESERVED")
        out.setdefault("addressType", "EXTERNAL")
    if coll in ("urlMaps", "backendServices", "targetHttpProxies"):
        out["fingerprint"] = "Zm9vYmFy"
    if coll == "instances":
        out["status"] = "RUNNING"
    return out


def _check_references(s: Store, project: str, body: dict[str, Any]) -> None:
    """Links to other resources must resolve, as Compute Engine checks them on insert."""
    text = json.dumps(body)
    for link in re.findall(
        r"(?:projects/[a-z0-9-]+/)?global/(?:" + _GLOBAL + r")/[a-z0-9-]+", text
    ):
        tail = link[link.index("global/") :]
        if f"compute/{project}/{tail}" not in s.resources:
            raise ApiError(
                400,
                f"The resource 'projects/{project}/{tail}' is not ready",
                "INVALID_ARGUMENT",
                "resourceNotReady",
            )


@route(
    "GET", r"/compute/v1/projects/([^/]+)/(global|zones/[^/]+)/(" + _GLOBAL + "|instances)/([^/]+)"
)
def compute_get(s: Store, r: Request, m: re.Match[str]) -> Any:
    return s.get(f"compute/{m[1]}/{m[2]}/{m[3]}/{m[4]}")


@route("POST", r"/compute/v1/projects/([^/]+)/(global|zones/[^/]+)/(" + _GLOBAL + "|instances)")
def compute_insert(s: Store, r: Request, m: re.Match[str]) -> Any:
    project, scope, coll = m[1], m[2], m[3]
    _check_references(s, project, r.body)
    body = _compute_body(project, scope, coll, r.body)
    s.create(f"compute/{project}/{scope}/{coll}/{r.body['name']}", body)
    return _compute_op(s, project, scope, body["selfLink"], "insert")


@route("GET", r"/compute/v1/projects/([^/]+)/(global|zones/[^/]+)/operations/([^/]+)")
def compute_op_get(s: Store, r: Request, m: re.Match[str]) -> Any:
    return s.get(f"compute/{m[1]}/{m[2]}/operations/{m[3]}")


@route("POST", r"/compute/v1/projects/([^/]+)/(global|zones/[^/]+)/operations/([^/]+)/wait")
def compute_op_wait(s: Store, r: Request, m: re.Match[str]) -> Any:
    return s.get(f"compute/{m[1]}/{m[2]}/operations/{m[3]}")


@route("GET", r"/compute/v1/projects/([^/]+)/global/images/family/([^/]+)")
def image_family(s: Store, r: Request, m: re.Match[str]) -> Any:
    return {
        "kind": "compute#image",
        "name": f"{m[2]}-1",
        "family": m[2],
        "selfLink": f"{COMPUTE}projects/{m[1]}/global/images/{m[2]}-1",
        "status": "READY",
    }


@route("GET", r"/compute/v1/projects/([^/]+)/zones/([^/]+)")
def zone_get(s: Store, r: Request, m: re.Match[str]) -> Any:
    return {
        "kind": "compute#zone",
        "name": m[2],
        "status": "UP",
        "region": f"{COMPUTE}projects/{m[1]}/regions/{m[2].rsplit('-', 1)[0]}",
        "selfLink": f"{COMPUTE}projects/{m[1]}/zones/{m[2]}",
    }


@route("GET", r"/compute/v1/projects/([^/]+)")
def compute_project(s: Store, r: Request, m: re.Match[str]) -> Any:
    return {
        "kind": "compute#project",
        "name": m[1],
        "id": PROJECT_NUMBER,
        "defaultServiceAccount": f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com",
    }


# ------------------------------------------------------------------ Service Management


@route("GET", r"/v1/services/([^/:]+)")
def managed_get(s: Store, r: Request, m: re.Match[str]) -> Any:
    return s.get(f"managed/{m[1]}")


@route("POST", r"/v1/services")
def managed_create(s: Store, r: Request, m: re.Match[str]) -> Any:
    name = r.body["serviceName"]
    s.create(
        f"managed/{name}",
        {"serviceName": name, "producerProjectId": r.body.get("producerProjectId")},
    )
    return s.lro(
        "",
        {
            "@type": "type.googleapis.com/google.api.servicemanagement.v1.ManagedService",
            "serviceName": name,
        },
    )


@route("POST", r"/v1/services/([^/:]+)/configs:submit")
def configs_submit(s: Store, r: Request, m: re.Match[str]) -> Any:
    s.get(f"managed/{m[1]}")
    files = r.body["configSource"]["files"]
    config_id = f"2026-01-01r{next(s.counter)}"
    s.resources[f"managed/{m[1]}/configs/{config_id}"] = {
        "id": config_id,
        "name": m[1],
        "files": files,
    }
    response = {
        "@type": "type.googleapis.com/google.api.servicemanagement.v1.SubmitConfigSourceResponse",
        "serviceConfig": {"id": config_id, "name": m[1], "title": "mlplane models"},
    }
    return s.lro("", response)


@route("POST", r"/v1/services:generateConfigReport")
def config_report(s: Store, r: Request, m: re.Match[str]) -> Any:
    return {"serviceName": "", "id": "", "changeReports": [{"configChanges": []}]}


@route("GET", r"/v1/services/([^/:]+)/configs")
def configs_list(s: Store, r: Request, m: re.Match[str]) -> Any:
    configs = s.children(f"managed/{m[1]}/configs/")
    return {"serviceConfigs": configs} if configs else {}


@route("POST", r"/v1/services/([^/:]+)/rollouts")
def rollouts_create(s: Store, r: Request, m: re.Match[str]) -> Any:
    rollout = {**r.body, "rolloutId": f"2026-01-01r{next(s.counter)}", "status": "SUCCESS"}
    s.resources[f"managed/{m[1]}/rollouts/{rollout['rolloutId']}"] = rollout
    return s.lro(
        "", {"@type": "type.googleapis.com/google.api.servicemanagement.v1.Rollout", **rollout}
    )


# ------------------------------------------------------------------ Cloud Build


@route("GET", r"/v1/projects/([^/]+)/locations/([^/]+)/triggers")
def triggers_list(s: Store, r: Request, m: re.Match[str]) -> Any:
    triggers = s.children(f"projects/{m[1]}/locations/{m[2]}/triggers/")
    return {"triggers": triggers} if triggers else {}


@route("POST", r"/v1/projects/([^/]+)/locations/([^/]+)/triggers")
def triggers_create(s: Store, r: Request, m: re.Match[str]) -> Any:
    name = r.body["name"]
    if any(t["name"] == name for t in s.children(f"projects/{m[1]}/locations/{m[2]}/triggers/")):
        raise conflict(name)
    trigger_id = f"trig-{next(s.counter)}"
    body = {
        **r.body,
        "id": trigger_id,
        "resourceName": f"projects/{m[1]}/locations/{m[2]}/triggers/{name}",
        "createTime": "2026-01-01T00:00:00Z",
    }
    return s.create(f"projects/{m[1]}/locations/{m[2]}/triggers/{trigger_id}", body)


@route("GET", r"/v1/projects/([^/]+)/locations/([^/]+)/triggers/([^/:]+)")
def triggers_get(s: Store, r: Request, m: re.Match[str]) -> Any:
    for t in s.children(f"projects/{m[1]}/locations/{m[2]}/triggers/"):
        if m[3] in (t["name"], t["id"]):
            return t
    raise not_found(m[3])


@route("PATCH", r"/v1/projects/([^/]+)/locations/([^/]+)/triggers/([^/:]+)")
def triggers_patch(s: Store, r: Request, m: re.Match[str]) -> Any:
    prefix = f"projects/{m[1]}/locations/{m[2]}/triggers/"
    for t in s.children(prefix):
        if m[3] in (t["name"], t["id"]):
            t.update(r.body)
            s.resources[prefix + t["id"]] = t
            return t
    raise not_found(m[3])
