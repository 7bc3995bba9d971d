"""May the caller do what their roles in the model let them do? Google's `testIamPermissions`.

The caller's roles are the model's bindings whose members include the caller (directly, by a
group the project file lists, or by domain); a `[team] admin` (roles/owner) is checked for every
team member's permissions; a user the model does not name is checked for the roles bound to
groups, whose membership Google resolves. Each scope the roles are bound at is asked once
(project, bucket, service account, secret, repository, Endpoints service), for the permissions
of its unconditional grants; a conditional grant (VMs by name prefix) holds only on the VMs it
names, so it is counted, not tested. A missing permission is reported with the actions that
need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from mlplane.errors import MlplaneError
from mlplane.iam.authorizer import Authorizer
from mlplane.iam.export.foundation import Foundation
from mlplane.iam.loading import LoadedProject
from mlplane.iam.synthesis import Binding, Scope, resolve_scope
from mlplane.model.principals import Principal
from mlplane.providers.errors import NotFound
from mlplane.providers.platform import ApiClient
from mlplane.workflows.preflight import Check, in_parallel
from mlplane.workflows.preflight_foundation import unreadable

MAX_PER_CALL = 100  # permissions per testIamPermissions request
CHECK = "permissions"
BIND_FIX = (
    "a project owner binds the model's roles with `mlplane export --format gcloud | bash` "
    "(or the Terraform route); they go to [team] principals and [members] in mlplane.toml"
)
NOUNS = {
    "project": "project ",
    "bucket": "bucket gs://",
    "serviceAccount": "service account ",
    "secret": "secret ",
    "repository": "repository ",
    "endpointsService": "Endpoints service ",
}


@dataclass(frozen=True)
class Target:
    """What the caller should hold at one scope: each permission with the actions needing it."""

    scope: Scope
    needs: tuple[tuple[str, tuple[str, ...]], ...]
    conditional: int  # permissions held only where a condition admits (not testable here)
    holders: str  # whose roles these are, in words

    @property
    def subject(self) -> str:
        s = self.scope
        where = f" ({s.location})" if s.location else ""
        return f"your permissions on {NOUNS[s.kind]}{s.name}{where}"


def caller_bindings(
    bindings: Sequence[Binding], authz: Authorizer, caller: Principal
) -> tuple[list[Binding], str]:
    """The model's bindings that are the caller's, and how they were chosen (for the report)."""
    members = set(authz.members_of(caller))
    mine = [b for b in bindings if members & set(b.members)]
    if mine:
        return mine, ""
    users = [b for b in bindings if b.holder.startswith("users:")]
    if caller.kind == "user" and members & set(authz.policy.admins):
        return users, "as a [team] admin (roles/owner): every team member's roles"
    grouped = [b for b in users if any(m.startswith("group:") for m in b.members)]
    if caller.kind == "user" and grouped:
        return grouped, "assuming membership of the model's groups (Google resolves it)"
    return [], ""


def _targets(loaded: LoadedProject, f: Foundation, bindings: Sequence[Binding]) -> list[Target]:
    emails = {sa.identity: sa.email for sa in f.iam.service_accounts}
    needs: dict[Scope, dict[str, set[str]]] = {}
    conditional: dict[Scope, set[str]] = {}
    holders: dict[Scope, list[str]] = {}
    for b in bindings:
        label = b.holder.replace("users:", "users of ").replace("identity:", "")
        holders.setdefault(b.scope, [])
        if label not in holders[b.scope]:
            holders[b.scope].append(label)
        if b.condition is not None:
            conditional.setdefault(b.scope, set()).update(b.role.permissions)
            needs.setdefault(b.scope, {})
            continue
        at = needs.setdefault(b.scope, {})
        for action_id in b.actions:
            action = loaded.model.action(action_id)
            for grant in action.grants if action is not None else ():
                if grant.condition is None and resolve_scope(loaded, grant, emails) == b.scope:
                    for p in grant.permissions:
                        at.setdefault(p, set()).add(action_id)
        for p in b.role.permissions:  # every permission of the role, even if no action names it
            at.setdefault(p, set())
    order = sorted(needs, key=lambda s: (s.kind != "project", s))
    return [
        Target(
            s,
            tuple((p, tuple(sorted(needs[s][p]))) for p in sorted(needs[s])),
            len(conditional.get(s, set()) - set(needs[s])),
            ", ".join(holders[s]),
        )
        for s in order
    ]


def _test_call(api: ApiClient, project: str, scope: Scope, perms: list[str]) -> Any:
    body = {"permissions": perms}
    if scope.kind == "project":
        method = "cloudresourcemanager.projects.testIamPermissions"
        return api.call(method, {"resource": project}, body)
    if scope.kind == "bucket":
        params = {"bucket": scope.name, "permissions": perms}
        return api.call("storage.buckets.testIamPermissions", params)
    method, resource = {
        "serviceAccount": (
            "iam.projects.serviceAccounts.testIamPermissions",
            f"projects/{project}/serviceAccounts/{scope.name}",
        ),
        "secret": (
            "secretmanager.projects.secrets.testIamPermissions",
            f"projects/{project}/secrets/{scope.name}",
        ),
        "repository": (
            "artifactregistry.projects.locations.repositories.testIamPermissions",
            f"projects/{project}/locations/{scope.location}/repositories/{scope.name}",
        ),
        "endpointsService": (
            "servicemanagement.services.testIamPermissions",
            f"services/{scope.name}",
        ),
    }[scope.kind]
    return api.call(method, {"resource": resource}, body)


def _held(api: ApiClient, project: str, target: Target) -> set[str]:
    wanted = [p for p, _ in target.needs]
    held: set[str] = set()
    for i in range(0, len(wanted), MAX_PER_CALL):
        answer = _test_call(api, project, target.scope, wanted[i : i + MAX_PER_CALL]) or {}
        held.update(str(p) for p in answer.get("permissions", ()))
    return held


def _check_target(api: ApiClient, project: str, target: Target) -> list[Check]:
    s, subject = target.scope, target.subject
    if not target.needs:
        detail = f"{target.conditional} hold only on the VMs a condition names ({target.holders})"
        return [Check(CHECK, subject, "ok", detail)]
    try:
        held = _held(api, project, target)
    except NotFound:
        return [Check(CHECK, subject, "unchecked", f"not tested: the {s.kind} is not found")]
    except MlplaneError as exc:
        why = unreadable(exc)
        return [Check(CHECK, subject, why.status, f"not tested: {why.why}")]
    lacking = [(p, acts) for p, acts in target.needs if p not in held]
    note = ""
    if target.conditional:
        note = f"; {target.conditional} more hold only on the VMs a condition names"
    total = len(target.needs)
    if not lacking:
        return [Check(CHECK, subject, "ok", f"{total} of {total} ({target.holders}){note}")]
    if len(lacking) == total:
        detail = f"none of the {total} permissions your roles grant here ({target.holders})"
    else:
        detail = "lacking " + ", ".join(
            p + (f" (needed by {', '.join(acts)})" if acts else "") for p, acts in lacking
        )
    missing = tuple(p for p, _ in lacking)
    return [Check(CHECK, subject, "denied", detail, missing, BIND_FIX, tuple(lacking))]


def check(
    api: ApiClient,
    f: Foundation,
    loaded: LoadedProject,
    authz: Authorizer,
    caller: Principal | None,
    absent: frozenset[tuple[str, str]],
    why_unknown: str = "",
) -> list[Check]:
    if caller is None:
        return [Check(CHECK, "your permissions", "unchecked", f"not tested: {why_unknown}")]
    bindings, how = caller_bindings(f.iam.bindings, authz, caller)
    if not bindings:
        return [
            Check(
                CHECK,
                "your permissions",
                "denied",
                f"{caller.member} holds no role in the model",
                (caller.member,),
                "add it to [team] principals (or [members]) in mlplane.toml; then a project "
                "owner re-runs `mlplane export --format gcloud | bash`",
            )
        ]
    targets = _targets(loaded, f, bindings)
    present = [t for t in targets if (t.scope.kind, t.scope.name) not in absent]
    checks = in_parallel([partial(_check_target, api, f.project, t) for t in present])
    if how and checks:
        checks[0] = replace(checks[0], detail=f"{checks[0].detail} [{how}]")
    if len(present) < len(targets):  # named above as missing: not named again
        n = len(targets) - len(present)
        detail = f"not tested on the {n} missing resources above that your roles are bound to"
        checks.append(Check(CHECK, "your permissions on what is missing", "unchecked", detail))
    return checks
