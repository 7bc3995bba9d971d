"""The loopback fake's IAM answers (tests/iam/gcloud_fake.py): who a token is (`tokeninfo`),
what they hold (`testIamPermissions` on a project, service account, bucket, secret, repository
or Endpoints service), Cloud Run services, and, when a test sets `store.enforce_apis`, Google's
403 for an API the project has not enabled.

What a caller holds is evaluated from the stored policies as Google's IAM does for these
resources: the bindings on the resource and on the project above it whose members include the
caller (`user:`/`serviceAccount:` from `store.tokens`, `group:` from `store.groups`, `domain:`),
each role's permissions (a custom role's stored `includedPermissions`, none when it is
deleted; `roles/owner` all; others from `store.predefined`). Conditional bindings name VMs by
prefix and never admit the resource tested here, so they are not counted.
"""

from __future__ import annotations

import re
from typing import Any

from tests.iam.gcloud_fake import (
    GUARDS,
    PROJECT_NUMBER,
    ApiError,
    Request,
    Store,
    route,
)

# ------------------------------------------------------------------ whose token, what they hold


@route("GET", r"/oauth2/tokeninfo")
def tokeninfo(s: Store, r: Request, m: re.Match[str]) -> Any:
    email = s.tokens.get(r.query.get("access_token", ""))
    if email is None:
        raise ApiError(400, "Invalid Value", "INVALID_ARGUMENT")
    return {"email": email, "email_verified": "true", "expires_in": "3599"}


def _members(s: Store, token: str) -> set[str]:
    email = s.tokens.get(token)
    if email is None:
        return set()
    if email.endswith(".gserviceaccount.com"):
        return {f"serviceAccount:{email}"}
    groups = {f"group:{g}" for g in s.groups.get(email, ())}
    return {f"user:{email}", f"domain:{email.partition('@')[2]}"} | groups


def _role_permissions(s: Store, role: str) -> set[str] | None:
    """The role's permissions; None: every permission (roles/owner)."""
    if role == "roles/owner":
        return None
    if role.startswith("projects/"):
        stored = s.resources.get(role)
        if stored is None or stored.get("deleted"):
            return set()
        return set(stored.get("includedPermissions", ()))
    return set(s.predefined.get(role, ()))


def held(s: Store, token: str, keys: list[str], wanted: list[str]) -> list[str]:
    """Which of `wanted` the token's principal holds on the policy keys (resource, then its
    project's), in the order asked."""
    members = _members(s, token)
    have: set[str] = set()
    for key in keys:
        for b in s.policies.get(key, {}).get("bindings", ()):
            if b.get("condition") or not members & set(b.get("members", ())):
                continue
            perms = _role_permissions(s, b["role"])
            if perms is None:
                return list(wanted)
            have |= perms
    return [p for p in wanted if p in have]


def _projects(s: Store) -> list[str]:
    return [k for k in s.policies if re.fullmatch(r"projects/[^/]+", k)]


def _answer(permissions: list[str]) -> dict[str, Any]:
    return {"permissions": permissions} if permissions else {}


@route("POST", r"/v1/projects/([^/:]+):testIamPermissions")
def project_test(s: Store, r: Request, m: re.Match[str]) -> Any:
    return _answer(held(s, r.token, [f"projects/{m[1]}"], r.body.get("permissions", [])))


@route("POST", r"/v1/projects/([^/]+)/serviceAccounts/([^/:]+):testIamPermissions")
def account_test(s: Store, r: Request, m: re.Match[str]) -> Any:
    s.get(f"iam/{m[2]}")
    keys = [f"iam/{m[2]}", f"projects/{m[1]}"]
    return _answer(held(s, r.token, keys, r.body.get("permissions", [])))


@route("GET", r"/storage/v1/b/([^/]+)/iam/testPermissions")
def bucket_test(s: Store, r: Request, m: re.Match[str]) -> Any:
    s.get(f"storage/{m[1]}")
    keys = [f"storage/{m[1]}", *_projects(s)]
    found = held(s, r.token, keys, r.multi.get("permissions", []))
    return {"kind": "storage#testIamPermissionsResponse", **_answer(found)}


@route("POST", r"/v1/projects/([^/]+)/secrets/([^/:]+):testIamPermissions")
def secret_test(s: Store, r: Request, m: re.Match[str]) -> Any:
    key = f"projects/{m[1]}/secrets/{m[2]}"
    if key not in s.resources:  # documented: an empty set, not NOT_FOUND
        return {}
    return _answer(held(s, r.token, [key, f"projects/{m[1]}"], r.body.get("permissions", [])))


@route("POST", r"/v1/projects/([^/]+)/locations/([^/]+)/repositories/([^/:]+):testIamPermissions")
def repository_test(s: Store, r: Request, m: re.Match[str]) -> Any:
    key = f"projects/{m[1]}/locations/{m[2]}/repositories/{m[3]}"
    s.get(key)
    return _answer(held(s, r.token, [key, f"projects/{m[1]}"], r.body.get("permissions", [])))


@route("POST", r"/v1/services/([^/:]+):testIamPermissions")
def managed_test(s: Store, r: Request, m: re.Match[str]) -> Any:
    key = f"managed/{m[1]}"
    if key not in s.resources:  # documented: an empty set, not NOT_FOUND
        return {}
    return _answer(held(s, r.token, [key, *_projects(s)], r.body.get("permissions", [])))


# ------------------------------------------------------------------ Cloud Run (v2)


@route("GET", r"/v2/projects/([^/]+)/locations/([^/]+)/services/([^/:]+)")
def run_get(s: Store, r: Request, m: re.Match[str]) -> Any:
    return s.get(f"run/{m[1]}/{m[2]}/{m[3]}")


@route("POST", r"/v2/projects/([^/]+)/locations/([^/]+)/services")
def run_create(s: Store, r: Request, m: re.Match[str]) -> Any:
    name = f"projects/{m[1]}/locations/{m[2]}/services/{r.query['serviceId']}"
    s.create(f"run/{m[1]}/{m[2]}/{r.query['serviceId']}", {**r.body, "name": name})
    return s.lro(f"projects/{m[1]}/locations/{m[2]}/", {"name": name})


# ------------------------------------------------------------------ APIs not enabled

# path -> the API serving it (Service Usage and Resource Manager answer regardless)
_APIS = (
    (r"/compute/v1/", "compute.googleapis.com", "Compute Engine API"),
    (r"/storage/v1/", "storage.googleapis.com", "Cloud Storage JSON API"),
    (r"/v2/projects/[^/]+/locations/[^/]+/services", "run.googleapis.com", "Cloud Run Admin API"),
    (r"/v1/projects/[^/]+/(serviceAccounts|roles)(/|$)", "iam.googleapis.com",
     "Identity and Access Management (IAM) API"),
    (r"/v1/projects/[^/]+/secrets", "secretmanager.googleapis.com", "Secret Manager API"),
    (r"/v1/projects/[^/]+/locations/[^/]+/repositories", "artifactregistry.googleapis.com",
     "Artifact Registry API"),
    (r"/v1/projects/[^/]+/locations/[^/]+/triggers", "cloudbuild.googleapis.com",
     "Cloud Build API"),
    (r"/v1/services/", "servicemanagement.googleapis.com", "Service Management API"),
)  # fmt: skip


def _api_enabled(s: Store, r: Request) -> None:
    if not s.enforce_apis:
        return
    for pattern, api, title in _APIS:
        if re.match(pattern, r.path) and f"services/{api}" not in s.resources:
            raise ApiError(
                403,
                f"{title} has not been used in project {PROJECT_NUMBER} before or it is "
                f"disabled. Enable it by visiting https://console.developers.google.com/apis/"
                f"api/{api}/overview?project={PROJECT_NUMBER} then retry.",
                "PERMISSION_DENIED",
                "accessNotConfigured",
            )


def _authenticated(s: Store, r: Request) -> None:
    """Once a test names the tokens, any other token is refused (401), as Google's are."""
    if s.tokens and r.token not in s.tokens and not r.path.startswith("/oauth2/"):
        raise ApiError(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
            "UNAUTHENTICATED",
        )


def _forbidden(s: Store, r: Request) -> None:
    """`store.forbidden`: paths the caller may not call, with the permission Google names."""
    for pattern, permission in s.forbidden.items():
        if re.match(pattern, r.path):
            raise ApiError(
                403,
                f"Permission '{permission}' denied on resource '{r.path}' (or it may not exist).",
                "PERMISSION_DENIED",
                "forbidden",
            )


GUARDS.extend((_authenticated, _api_enabled, _forbidden))
