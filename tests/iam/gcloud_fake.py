"""A loopback fake of the Google APIs `mlplane export --format gcloud` calls, for the real gcloud.

One resource store keyed by the resource's path, answering as Google does where gcloud can tell:
404 until a resource exists, 409 when it is created twice, custom roles that are soft-deleted
(listed with `deleted: true`, their id refused on create with 400 FAILED_PRECONDITION, restored
by `:undelete`, not updatable until then), IAM policies with etags (409 on a stale one)
and version-3 conditions, long-running operations (returned done), Compute Engine operations,
Service Management configs and rollouts. Unknown routes answer 501 and are recorded, so a test
sees exactly what gcloud asked for that the fake does not know.

Point gcloud at it with `gcloud_env(...)`. The routes, one section per API, are in
gcloud_fake_apis.py.
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
    import tests.iam.gcloud_fake_apis  # noqa: F401  (registers the routes)

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
