"""The IamPlan as Terraform JSON (`*.tf.json`).

Resources reference each other with interpolations (`${google_project_iam_custom_role.X.name}`,
`serviceAccount:${google_service_account.X.email}`) so Terraform creates roles and accounts
before the bindings that use them. Bindings are additive `*_iam_member` resources: they never
remove grants made outside mlplane (`mlplane iam audit` reports those).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from mlplane.iam.export.common import (
    HEADER,
    MemberBinding,
    condition_description,
    member_bindings,
    prerequisites_note,
)
from mlplane.iam.synthesis import Binding, IamPlan

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_-]+")

# scope kind -> (resource type, the arguments that name the resource)
BINDING_TYPES = {
    "project": "google_project_iam_member",
    "bucket": "google_storage_bucket_iam_member",
    "secret": "google_secret_manager_secret_iam_member",
    "repository": "google_artifact_registry_repository_iam_member",
    "endpointsService": "google_endpoints_service_iam_member",
    "serviceAccount": "google_service_account_iam_member",
}


def lit(text: str) -> str:
    """A literal string in Terraform JSON: `${` and `%{` would start a template sequence."""
    return text.replace("${", "$${").replace("%{", "%%{")


class _Names:
    """Stable, unique Terraform identifiers: letters, digits, '_' and '-', not starting with a
    digit or '-'. A collision after sanitizing gets a short hash of the original text."""

    def __init__(self) -> None:
        self._used: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        base = _NOT_IDENT.sub("_", text).strip("_") or "r"
        if not re.match(r"[A-Za-z_]", base):
            base = "r_" + base
        name = base
        if self._used.get(name, text) != text:
            name = f"{base}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"
        self._used[name] = text
        return name


# (scope kind, name) -> the binding resource's arguments that name its target, as references
Targets = dict[tuple[str, str], dict[str, str]]


def _scope_arguments(
    mb: MemberBinding, plan: IamPlan, sa_refs: dict[str, str], targets: Targets
) -> dict[str, str]:
    scope = mb.binding.scope
    if (scope.kind, scope.name) in targets:
        return dict(targets[(scope.kind, scope.name)])
    if scope.kind == "project":
        return {"project": plan.project}
    if scope.kind == "bucket":
        return {"bucket": scope.name}
    if scope.kind == "secret":
        return {"project": plan.project, "secret_id": scope.name}
    if scope.kind == "repository":
        return {"project": plan.project, "location": scope.location, "repository": scope.name}
    if scope.kind == "endpointsService":
        return {"service_name": scope.name}
    if scope.kind == "serviceAccount":
        ref = sa_refs.get(scope.name)
        sa_id = (
            f"${{google_service_account.{ref}.name}}"
            if ref
            else f"projects/{plan.project}/serviceAccounts/{scope.name}"
        )
        return {"service_account_id": sa_id}
    raise ValueError(f"no Terraform binding resource for scope kind '{scope.kind}'")


def _condition(binding: Binding) -> dict[str, str]:
    assert binding.condition is not None
    return {
        "title": lit(binding.condition.title),
        "description": lit(condition_description(binding)),
        "expression": lit(binding.condition.expression),
    }


def terraform_document(
    plan: IamPlan, targets: Targets | None = None, depends_on: list[str] | None = None
) -> dict[str, Any]:
    """The IAM resources; `targets` makes bindings refer to their targets' resources (else
    their names), `depends_on` is added to accounts and roles (the APIs they need)."""
    targets = targets or {}
    after = {"depends_on": depends_on} if depends_on else {}
    names = _Names()
    accounts: dict[str, Any] = {}
    sa_refs: dict[str, str] = {}  # email -> resource name
    for sa in plan.service_accounts:
        ref = sa_refs[sa.email] = names(sa.identity)
        accounts[ref] = {
            "project": plan.project,
            "account_id": sa.account_id,
            "display_name": lit(sa.display_name),
            "description": lit(sa.description),
            **after,
        }
    roles: dict[str, Any] = {}
    role_refs: dict[str, str] = {}  # role id -> resource name
    for role in plan.roles:
        ref = role_refs[role.role_id] = names(role.role_id)
        roles[ref] = {
            "project": plan.project,
            "role_id": role.role_id,
            "title": lit(role.title),
            "description": lit(role.description),
            "permissions": sorted(role.permissions),
            "stage": "GA",
            **after,
        }
    resources: dict[str, Any] = {
        "google_service_account": accounts,
        "google_project_iam_custom_role": roles,
    }
    for mb in member_bindings(plan):
        b = mb.binding
        role_ref = role_refs[b.role.role_id]
        who = mb.account.identity if mb.account else mb.member
        member = (
            f"serviceAccount:${{google_service_account.{sa_refs[mb.account.email]}.email}}"
            if mb.account
            else lit(mb.member)
        )
        body: dict[str, Any] = {
            **_scope_arguments(mb, plan, sa_refs, targets),
            "role": f"${{google_project_iam_custom_role.{role_ref}.name}}",
            "member": member,
        }
        if b.condition is not None:
            body["condition"] = _condition(b)
        rtype = BINDING_TYPES[b.scope.kind]
        resources.setdefault(rtype, {})[names(f"{role_ref}__{who}")] = body
    return {"//": HEADER + f" Project: {plan.project}.", "resource": resources}


def render_terraform(plan: IamPlan) -> str:
    """The IAM-only export (`mlplane iam export`): its comment names what must exist first."""
    doc = terraform_document(plan)
    doc["//"] += " " + prerequisites_note(plan)
    return json.dumps(doc, indent=2) + "\n"
