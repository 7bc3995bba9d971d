"""A loopback fake of the Google APIs `mlplane export --format gcloud` calls, for the real gcloud.

One resource store keyed by the resource's path, answering as Google does where gcloud can tell:
404 until a resource exists, 409 when it is created twice, custom roles that are soft-deleted
(listed with `deleted: true`, their id refused on create with 400 FAILED_PRECONDITION, restored
by `:undelete`, not updatable until then), IAM policies with etags (409 on a stale one)
and version-3 conditions, long-running operations (returned done), Compute Engine operations,
Service Management configs and rollouts. Unknown routes answer 501 and are recorded, so a test
sees exactly what gcloud asked for that the fake does not know.

Point gcloud at it with `gcloud_env(...)`. The routes, one section per API, are in
gcloud_fake_apis.py; IAM's answers to `testIamPermissions` (from the stored policies and
roles, for the principal `tokens` maps a bearer token to), `tokeninfo`, Cloud Run and the
optional "API not enabled" refusals (`enforce_apis`) are in gcloud_fake_iam.py. `dispatch`
answers one request without HTTP (tests seed a project through the same routes).
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
    token: str = ""  # the bearer token it carried
    multi: dict[str, list[str]] = field(default_factory=dict)  # every value of each parameter

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
    # IAM as gcloud_fake_iam evaluates it: bearer token -> email; email -> its groups;
    # predefined role -> its permissions (roles/owner holds every permission)
    tokens: dict[str, str] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    predefined: dict[str, set[str]] = field(default_factory=dict)
    enforce_apis: bool = False  # refuse calls to APIs the project has not enabled, as Google
    forbidden: dict[str, str] = field(default_factory=dict)  # path regex -> permission: 403
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
# Called before a route with every request; raise ApiError to refuse it.
GUARDS: list[Callable[[Store, Request], None]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        ROUTES.append((method, re.compile(pattern + r"$"), fn))
        return fn

    return deco


# ------------------------------------------------------------------ the HTTP server


def dispatch(
    store: Store, method: str, target: str, raw: bytes | Any = b"", token: str = ""
) -> tuple[int, Any]:
    """Answer one request (`target`: path and query) as the server does: (status, JSON)."""
    parts = urlsplit(target)
    multi = parse_qs(parts.query)
    query = {k: v[-1] for k, v in multi.items()}
    path = unquote(parts.path)
    if isinstance(raw, bytes):
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
    else:
        body = raw
    req = Request(method, path, query, body, token, multi)
    with store.lock:
        store.requests.append(req)
        for verb, pattern, fn in ROUTES:
            m = pattern.match(path) if verb == method else None
            if m is None:
                continue
            try:
                for guard in GUARDS:
                    guard(store, req)
                return 200, fn(store, req, m)
            except ApiError as e:
                error: dict[str, Any] = {"code": e.code, "message": e.message, "status": e.status}
                if e.reason:
                    error["errors"] = [
                        {"reason": e.reason, "message": e.message, "domain": "global"}
                    ]
                return e.code, {"error": error}
        store.unknown.append(req)
        return 501, {
            "error": {
                "code": 501,
                "message": f"fake: no route for {method} {path}",
                "status": "UNIMPLEMENTED",
            }
        }


class _Handler(BaseHTTPRequestHandler):
    store: Store
    prefixes: tuple[str, ...]

    def log_message(self, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        auth = self.headers.get("Authorization") or ""
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        status, out = dispatch(self.store, self.command, self.path, raw, token)
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
    import tests.iam.gcloud_fake_apis  # registers the routes, as does the next one
    import tests.iam.gcloud_fake_iam  # noqa: F401

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


def client_env(base: str, token_file: str) -> dict[str, str]:
    """The variables that point mlplane's own client at the fake: every API's override (Cloud
    Run's too), the token endpoint (for `tokeninfo`), and a token file."""
    env = {
        f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api.upper()}": f"{base}/{prefix}"
        for api, prefix in {**APIS, "run": ""}.items()
    }
    env["CLOUDSDK_AUTH_TOKEN_HOST"] = f"{base}/oauth2/token"
    env["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"] = token_file
    return env
