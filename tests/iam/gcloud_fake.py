"""A loopback fake of the Google APIs `mlplane export --format gcloud` calls, for the real gcloud.

One resource store keyed by the resource's path, answering as Google does where gcloud can tell:
404 until a resource exists, 409 when it is created twice, custom roles that are soft-deleted
(still there, `deleted: true`, 409 on create, restored by `:undelete`), IAM policies with etags
and version-3 conditions, long-running operations (returned done), Compute Engine operations,
Service Management configs and rollouts. Unknown routes answer 501 and are recorded, so a test
sees exactly what gcloud asked for that the fake does not know.

Point gcloud at it with `env(token_file, config_dir)`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PROJECT_NUMBER = "123456789012"
COMPUTE = "https://www.googleapis.com/compute/v1/"
# API name -> path prefix of its override (CLOUDSDK_API_ENDPOINT_OVERRIDES_<API>)
APIS = {
    "compute": "compute/v1/",
    "iam": "",
    "cloudresourcemanager": "",
    "storage": "storage/v1/",
    "secretmanager": "",
    "artifactregistry": "",
    "servicemanagement": "",
    "serviceusage": "",
    "cloudbuild": "",
}
# POSTs that read: not mutations
READ_VERBS = (
    ":getIamPolicy",
    ":testIamPermissions",
    ":queryTestablePermissions",
    ":generateConfigReport",
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any

    @property
    def mutating(self) -> bool:
        if self.method == "GET":
            return False
        if self.method == "POST" and self.path.endswith(READ_VERBS):
            return False
        return not (self.method == "POST" and self.path.endswith("/wait"))


class ApiError(Exception):
    def __init__(self, code: int, message: str, status: str, reason: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.reason = code, message, status, reason


def not_found(what: str) -> ApiError:
    return ApiError(404, f"The resource '{what}' was not found", "NOT_FOUND", "notFound")


def conflict(what: str) -> ApiError:
    return ApiError(409, f"The resource '{what}' already exists", "ALREADY_EXISTS", "alreadyExists")


@dataclass
class Store:
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    unknown: list[Request] = field(default_factory=list)
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str) -> dict[str, Any]:
        if key not in self.resources:
            raise not_found(key)
        return copy.deepcopy(self.resources[key])

    def create(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        if key in self.resources:
            raise conflict(key)
        self.resources[key] = body
        return copy.deepcopy(body)

    def children(self, prefix: str) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(v)
            for k, v in self.resources.items()
            if k.startswith(prefix) and "/" not in k[len(prefix) :]
        ]

    def policy(self, key: str) -> dict[str, Any]:
        pol = self.policies.get(key, {"version": 1, "etag": "ACAB", "bindings": []})
        return copy.deepcopy(pol)

    def set_policy(self, key: str, policy: dict[str, Any]) -> dict[str, Any]:
        current = self.policies.get(key, {"etag": "ACAB"})
        if policy.get("etag") and policy["etag"] != current["etag"]:
            raise ApiError(409, "There were concurrent policy changes", "ABORTED", "conflict")
        text = json.dumps(policy.get("bindings", []), sort_keys=True)
        stored = {
            "version": policy.get("version", 1),
            "etag": base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()[:9]).decode(),
            "bindings": policy.get("bindings", []),
        }
        self.policies[key] = stored
        return copy.deepcopy(stored)

    def lro(self, prefix: str, response: dict[str, Any] | None = None) -> dict[str, Any]:
        op = {"name": f"{prefix}operations/op-{next(self.counter)}", "done": True}
        if response is not None:
            op["response"] = response
        self.resources[op["name"]] = op
        return op


Handler = Callable[[Store, Request, "re.Match[str]"], Any]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        ROUTES.append((method, re.compile(pattern + r"$"), fn))
        return fn

    return deco


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
    roles = [
        {k: v for k, v in role.items() if k != "includedPermissions"}
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


# ------------------------------------------------------------------ the HTTP server


class _Handler(BaseHTTPRequestHandler):
    store: Store
    prefixes: tuple[str, ...]

    def log_message(self, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = unquote(parts.path)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        req = Request(self.command, path, query, body)
        status, out = 200, None
        with self.store.lock:
            self.store.requests.append(req)
            for method, pattern, fn in ROUTES:
                m = pattern.match(path) if method == self.command else None
                if m is None:
                    continue
                try:
                    out = fn(self.store, req, m)
                except ApiError as e:
                    status = e.code
                    error = {"code": e.code, "message": e.message, "status": e.status}
                    if e.reason:
                        error["errors"] = [
                            {"reason": e.reason, "message": e.message, "domain": "global"}
                        ]
                    out = {"error": error}
                break
            else:
                self.store.unknown.append(req)
                status = 501
                out = {
                    "error": {
                        "code": 501,
                        "message": f"fake: no route for {self.command} {path}",
                        "status": "UNIMPLEMENTED",
                    }
                }
        data = json.dumps(out if out is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


@contextmanager
def fake_google() -> Iterator[tuple[str, Store]]:
    """Serve the fake on 127.0.0.1; yields (base URL, store)."""
    store = Store()
    handler = type("H", (_Handler,), {"store": store})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", store
    finally:
        server.shutdown()
        server.server_close()


def gcloud_env(base: str, token_file: str, config_dir: str, project: str) -> dict[str, str]:
    env = {
        "CLOUDSDK_CONFIG": config_dir,
        "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": token_file,
        "CLOUDSDK_CORE_PROJECT": project,
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
    }
    for api, prefix in APIS.items():
        env[f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api.upper()}"] = f"{base}/{prefix}"
    return env
