"""Is the foundation `mlplane export` creates in the project? Read back through Google's APIs.

The list of what to look for is the export's own `Foundation` (iam/export/foundation.py): the
APIs, service accounts, custom roles, bucket, secrets, repository, Endpoints service, firewall
rule, address and load balancer, triggers and auxiliary services. Lists are read once per kind
(roles with their permissions, `view=FULL`); single resources with their `get`.

A 404 is missing. A 403 is `unchecked` (the caller may not read it, or its API is not enabled),
except Service Management's "not found or permission denied" for an Endpoints service, which is
read together with whether the project has the service enabled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from mlplane.errors import MlplaneError, PermissionDenied
from mlplane.iam.export.foundation import Foundation, NamedResource
from mlplane.providers.errors import NotFound
from mlplane.providers.platform import ApiClient
from mlplane.workflows.preflight import EXPORT_FIX, Check, Status, in_parallel

ABSENT = object()


@dataclass(frozen=True)
class Unreadable:
    """Why a read did not say: 403 (`unchecked`), or another error of the API (`error`)."""

    why: str
    status: Status = "unchecked"


@dataclass(frozen=True)
class FoundationResult:
    checks: tuple[Check, ...]
    absent: frozenset[tuple[str, str]]  # (scope kind, name) known not to exist


def read(api: ApiClient, method: str, params: Mapping[str, Any]) -> Any:
    """The resource, `ABSENT` (404), or `Unreadable` (the reason, in Google's words)."""
    try:
        return api.call(method, params) or {}
    except NotFound:
        return ABSENT
    except MlplaneError as exc:
        return unreadable(exc)


def read_list(api: ApiClient, method: str, params: Mapping[str, Any], items: str) -> Any:
    """Every item of a paged list, or `Unreadable`."""
    out: list[Any] = []
    token = None
    try:
        while True:
            page = api.call(method, {**params, **({"pageToken": token} if token else {})}) or {}
            out += page.get(items, ())
            token = page.get("nextPageToken")
            if not token:
                return out
    except MlplaneError as exc:
        return unreadable(exc)


def unreadable(exc: MlplaneError) -> Unreadable:
    """A 403 is the caller's lack of a read permission, or an API not enabled; credentials
    errors are raised (they end the whole check); anything else is this check's error."""
    from mlplane.workflows import compose

    if compose.is_unauthorized(exc):
        raise exc
    if isinstance(exc, PermissionDenied):
        return Unreadable(denied_reason(str(exc)))
    return Unreadable(f"could not read it: {exc}", "error")


def denied_reason(message: str) -> str:
    text = message.removesuffix(" (denied by the provider)").split(". ", 1)[0]
    if "has not been used in project" in message or "it is disabled" in message:
        return f"its API is not enabled ({text})"
    return f"you may not read it ({text})"


def _ok(check: str, subject: str, detail: str = "") -> Check:
    return Check(check, subject, "ok", detail)


def _unchecked(check: str, subject: str, why: Unreadable) -> Check:
    return Check(check, subject, why.status, why.why)


def _listed(names: list[str], total: int) -> str:
    return f"{len(names)} of {total} missing: {', '.join(names)}"


def _missing(check: str, subject: str, names: list[str], total: int) -> Check:
    return Check(check, subject, "missing", _listed(names, total), tuple(names), EXPORT_FIX)


class _Checks:
    """Each method is one independent check (a few reads); see `check`."""

    def __init__(self, api: ApiClient, f: Foundation) -> None:
        self.api, self.f = api, f
        self.enabled: set[str] | Unreadable = set()
        self.absent: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def mark_absent(self, kind: str, *names: str) -> None:
        with self._lock:
            self.absent |= {(kind, n) for n in names}

    # -- APIs (read first: the Endpoints check uses the enabled set) --------------------------

    def apis(self) -> list[Check]:
        params = {"parent": f"projects/{self.f.project}", "filter": "state:ENABLED"}
        found = read_list(
            self.api, "serviceusage.services.list", params | {"pageSize": 200}, "services"
        )
        if isinstance(found, Unreadable):
            self.enabled = found
            return [_unchecked("apis", "APIs", found)]
        self.enabled = {
            str((s.get("config") or {}).get("name") or str(s.get("name", "")).rsplit("/", 1)[-1])
            for s in found
        }
        missing = [a for a in self.f.apis if a not in self.enabled]
        if not missing:
            return [_ok("apis", "APIs", f"{len(self.f.apis)} enabled")]
        fix = f"gcloud services enable {' '.join(missing)} --project {self.f.project}"
        detail = f"{len(missing)} of {len(self.f.apis)} not enabled (named in the fix)"
        return [Check("apis", "APIs", "missing", detail, tuple(missing), fix)]

    # -- IAM: service accounts and custom roles ------------------------------------------------

    def service_accounts(self) -> list[Check]:
        subject = "service accounts"
        params = {"name": f"projects/{self.f.project}", "pageSize": 100}
        found = read_list(self.api, "iam.projects.serviceAccounts.list", params, "accounts")
        if isinstance(found, Unreadable):
            return [_unchecked("service-accounts", subject, found)]
        live = {str(a.get("email", "")).lower(): a for a in found}
        wanted = self.f.iam.service_accounts
        missing = [sa.email for sa in wanted if sa.email not in live]
        self.mark_absent("serviceAccount", *missing)
        out = []
        if missing:
            out.append(_missing("service-accounts", subject, missing, len(wanted)))
        for sa in wanted:
            if live.get(sa.email, {}).get("disabled"):
                fix = f"gcloud iam service-accounts enable {sa.email} --project {self.f.project}"
                out.append(
                    Check(
                        "service-accounts",
                        f"service account {sa.email}",
                        "drift",
                        "disabled",
                        (sa.email,),
                        fix,
                    )
                )
        return out or [_ok("service-accounts", subject, f"{len(wanted)} present")]

    def custom_roles(self) -> list[Check]:
        subject, project = "custom roles", self.f.project
        params = {"parent": f"projects/{project}", "view": "FULL", "showDeleted": True}
        found = read_list(self.api, "iam.projects.roles.list", params | {"pageSize": 1000}, "roles")
        if isinstance(found, Unreadable):
            return [_unchecked("custom-roles", subject, found)]
        live = {str(r.get("name", "")).rsplit("/", 1)[-1]: r for r in found}
        wanted = self.f.iam.roles
        missing = [r.role_id for r in wanted if r.role_id not in live]
        out = []
        if missing:
            out.append(_missing("custom-roles", subject, missing, len(wanted)))
        for role in wanted:
            have = live.get(role.role_id)
            if have is not None:
                out += _role_drift(project, role.role_id, role.permissions, have)
        return out or [_ok("custom-roles", subject, f"{len(wanted)} present, as the model says")]

    # -- what the bindings are scoped to -------------------------------------------------------

    def named(self, r: NamedResource) -> list[Check]:
        p = self.f.project
        method, params, subject = {
            "bucket": ("storage.buckets.get", {"bucket": r.name}, f"bucket gs://{r.name}"),
            "secret": (
                "secretmanager.projects.secrets.get",
                {"name": f"projects/{p}/secrets/{r.name}"},
                f"secret {r.name}",
            ),
            "repository": (
                "artifactregistry.projects.locations.repositories.get",
                {"name": f"projects/{p}/locations/{r.location}/repositories/{r.name}"},
                f"repository {r.name} ({r.location})",
            ),
        }[r.kind]
        found = read(self.api, method, params)
        if isinstance(found, Unreadable):
            return [_unchecked(r.kind, subject, found)]
        if found is ABSENT:
            self.mark_absent(r.kind, r.name)
            return [Check(r.kind, subject, "missing", "not found", (r.name,), _create_fix(r))]
        return [_ok(r.kind, subject)]

    def endpoints(self, r: NamedResource) -> list[Check]:
        subject = f"Endpoints service {r.name}"
        if isinstance(self.enabled, set) and r.name in self.enabled:
            return [_ok("endpoints", subject, "deployed and enabled")]
        found = read(self.api, "servicemanagement.services.get", {"serviceName": r.name})
        if (
            isinstance(found, Unreadable)
            and found.status == "unchecked"
            and isinstance(self.enabled, set)
        ):  # Google's 403 "not found or permission denied" for a service that does not exist
            found = ABSENT
        if isinstance(found, Unreadable):
            return [_unchecked("endpoints", subject, found)]
        if found is ABSENT:
            self.mark_absent("endpointsService", r.name)
            return [
                Check("endpoints", subject, "missing", "not deployed", (r.name,), _create_fix(r))
            ]
        if isinstance(self.enabled, Unreadable):
            return [_ok("endpoints", subject, "deployed (whether enabled: unchecked)")]
        fix = f"gcloud services enable {r.name} --project {self.f.project}"
        return [Check("endpoints", subject, "drift", "deployed, not enabled", (r.name,), fix)]

    # -- network: firewall rule, address, load balancer ----------------------------------------

    def firewall(self) -> list[Check]:
        fw, p = self.f.firewall, self.f.project
        subject = f"firewall rule {fw.name}"
        found = read(self.api, "compute.firewalls.get", {"project": p, "firewall": fw.name})
        if isinstance(found, Unreadable):
            return [_unchecked("firewall", subject, found)]
        if found is ABSENT:
            return [Check("firewall", subject, "missing", "not found", (fw.name,), EXPORT_FIX)]
        allowed = any(
            a.get("IPProtocol") == "tcp" and str(fw.port) in a.get("ports", [str(fw.port)])
            for a in found.get("allowed", ())
        )
        problems = []
        if found.get("disabled"):
            problems.append("disabled")
        if found.get("direction", "INGRESS") != "INGRESS" or not allowed:
            problems.append(f"does not admit tcp:{fw.port}")
        lacking = sorted(set(fw.source_ranges) - set(found.get("sourceRanges", ())))
        if lacking:
            problems.append(f"lacks source ranges {', '.join(lacking)}")
        tags = sorted(set(fw.target_tags) - set(found.get("targetTags", ())))
        if tags:
            problems.append(f"lacks target tags {', '.join(tags)}")
        if not problems:
            return [_ok("firewall", subject, "admits Google's health checkers")]
        fix = (
            f"gcloud compute firewall-rules update {fw.name} --project {p} --no-disabled "
            f"--allow=tcp:{fw.port} --source-ranges={','.join(fw.source_ranges)} "
            f"--target-tags={','.join(fw.target_tags)}"
        )
        return [Check("firewall", subject, "drift", "; ".join(problems), (fw.name,), fix)]

    def load_balancer(self) -> list[Check]:
        lb, p = self.f.load_balancer, self.f.project
        parts = (
            ("address", "compute.globalAddresses.get", "address", lb.address),
            (
                "backend service",
                "compute.backendServices.get",
                "backendService",
                lb.default_backend,
            ),
            ("URL map", "compute.urlMaps.get", "urlMap", lb.url_map),
            ("target HTTP proxy", "compute.targetHttpProxies.get", "targetHttpProxy", lb.proxy),
            (
                "forwarding rule",
                "compute.globalForwardingRules.get",
                "forwardingRule",
                lb.forwarding_rule,
            ),
        )
        subject = "load balancer"
        missing = []
        for noun, method, param, name in parts:
            found = read(self.api, method, {"project": p, param: name})
            if isinstance(found, Unreadable):
                return [_unchecked("load-balancer", f"{subject} ({noun} {name})", found)]
            if found is ABSENT:
                missing.append(f"{noun} {name}")
        if not missing:
            detail = f"address {lb.address}, forwarding rule {lb.forwarding_rule}"
            return [_ok("load-balancer", subject, detail)]
        return [_missing("load-balancer", subject, missing, len(parts))]

    # -- CI triggers, auxiliary services ---------------------------------------------------------

    def triggers(self) -> list[Check]:
        p = self.f.project
        subject = "Cloud Build triggers"
        params = {"parent": f"projects/{p}/locations/global", "projectId": p}
        found = read_list(
            self.api, "cloudbuild.projects.locations.triggers.list", params, "triggers"
        )
        if isinstance(found, Unreadable):
            return [_unchecked("triggers", subject, found)]
        live = {str(t.get("name")): t for t in found}
        missing = [t.name for t in self.f.triggers if t.name not in live]
        out = []
        if missing:
            out.append(_missing("triggers", subject, missing, len(self.f.triggers)))
        for t in self.f.triggers:
            have = live.get(t.name)
            runs_as = str((have or {}).get("serviceAccount", "")).rsplit("/", 1)[-1]
            if have is not None and runs_as != t.runs_as:
                fix = (
                    f"gcloud builds triggers delete {t.name} --project {p}, then "
                    "`mlplane export --format gcloud | bash` creates it as the model says"
                )
                detail = f"runs as {runs_as or 'the default build account'}, not {t.runs_as}"
                out.append(Check("triggers", f"trigger {t.name}", "drift", detail, (t.name,), fix))
        return out or [_ok("triggers", subject, ", ".join(t.name for t in self.f.triggers))]

    def instance(self, name: str, zone: str) -> list[Check]:
        subject = f"auxiliary instance {name}"
        params = {"project": self.f.project, "zone": zone, "instance": name}
        found = read(self.api, "compute.instances.get", params)
        if isinstance(found, Unreadable):
            return [_unchecked("auxiliary", subject, found)]
        if found is ABSENT:
            return [Check("auxiliary", subject, "missing", "not found", (name,), EXPORT_FIX)]
        return [_ok("auxiliary", subject, str(found.get("status", "")))]

    def run_service(self, name: str, region: str) -> list[Check]:
        subject = f"Cloud Run service {name}"
        params = {"name": f"projects/{self.f.project}/locations/{region}/services/{name}"}
        found = read(self.api, "run.projects.locations.services.get", params)
        if isinstance(found, Unreadable):
            return [_unchecked("auxiliary", subject, found)]
        if found is ABSENT:
            return [Check("auxiliary", subject, "missing", "not found", (name,), EXPORT_FIX)]
        return [_ok("auxiliary", subject)]


def _role_drift(
    project: str, role_id: str, wanted: tuple[str, ...], have: Mapping[str, Any]
) -> list[Check]:
    subject = f"custom role {role_id}"
    live = set(have.get("includedPermissions", ()))
    lacks = sorted(set(wanted) - live)
    extra = sorted(live - set(wanted))
    problems, fixes = [], []
    if have.get("deleted"):
        problems.append("deleted")
        fixes.append(f"gcloud iam roles undelete {role_id} --project {project}")
    if lacks:
        problems.append(f"lacks {', '.join(lacks)}")
    if extra:
        problems.append(f"has {', '.join(extra)} beyond the model")
    if lacks or extra:
        update = f"gcloud iam roles update {role_id} --project {project}"
        if lacks:
            update += f" --add-permissions={','.join(lacks)}"
        if extra:
            update += f" --remove-permissions={','.join(extra)}"
        fixes.append(update)
    if not problems:
        return []
    return [
        Check("custom-roles", subject, "drift", "; ".join(problems), (role_id,), " && ".join(fixes))
    ]


def _create_fix(r: NamedResource) -> str:
    if r.existing:
        return (
            f"it is declared in [resources] existing (`{r.kind}:{r.ref}`): create it, or remove "
            "it from that list so that `mlplane export` creates it"
        )
    return EXPORT_FIX


def check(api: ApiClient, f: Foundation) -> FoundationResult:
    """Every foundation check, APIs first (the Endpoints check reads the enabled set)."""
    c = _Checks(api, f)
    first = c.apis()
    tasks: list[Callable[[], list[Check]]] = [c.service_accounts, c.custom_roles]
    tasks += [partial(c.named, r) for r in f.resources if r.kind != "endpointsService"]
    tasks += [partial(c.endpoints, r) for r in f.of_kind("endpointsService")]
    tasks += [c.firewall, c.load_balancer, c.triggers]
    tasks += [partial(c.instance, i.name, i.zone) for i in f.instances]
    tasks += [partial(c.run_service, s.name, s.region) for s in f.run_services]
    checks = first + in_parallel(tasks)
    return FoundationResult(tuple(checks), frozenset(c.absent))
