"""The IAM that a Terraform JSON document (our own export) implies, as a PolicySet.

Resolves the document's own interpolations (`${google_service_account.X.email}`,
`${google_project_iam_custom_role.X.name}`, ...) from the resources' arguments, and groups the
additive `*_iam_member` resources (and authoritative `*_iam_binding` ones) into one policy per
project or resource. Other resource types grant nothing and are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlplane.errors import ConfigError
from mlplane.iam.audit.members import canonical_member
from mlplane.iam.audit.policy import (
    Policy,
    PolicyBinding,
    PolicyCondition,
    PolicySet,
    RoleDefinition,
)
from mlplane.iam.synthesis import Scope

_REF = re.compile(r"(?<!\$)\$\{((?:data\.)?[a-z0-9_]+)\.([A-Za-z0-9_-]+)\.([a-z_]+)\}")
_KINDS = {
    "google_project_iam": "project",
    "google_storage_bucket_iam": "bucket",
    "google_secret_manager_secret_iam": "secret",
    "google_artifact_registry_repository_iam": "repository",
    "google_endpoints_service_iam": "endpointsService",
    "google_service_account_iam": "serviceAccount",
}


class _Doc:
    def __init__(self, doc: Mapping[str, Any], source: str) -> None:
        self.source = source
        resources = doc.get("resource", {})
        if not isinstance(resources, dict):
            raise ConfigError(source, "resource", "expected an object of resource types")
        self.resources: dict[str, dict[str, dict[str, Any]]] = resources
        data = doc.get("data", {})
        self.data: dict[str, dict[str, dict[str, Any]]] = data if isinstance(data, dict) else {}

    def error(self, rtype: str, name: str, field: str, message: str) -> ConfigError:
        return ConfigError(self.source, f"resource.{rtype}.{name}.{field}".rstrip("."), message)

    def body(self, rtype: str, name: str) -> dict[str, Any]:
        if rtype.startswith("data."):
            body = self.data.get(rtype.removeprefix("data."), {}).get(name)
        else:
            body = self.resources.get(rtype, {}).get(name)
        if not isinstance(body, dict):
            raise self.error(rtype, name, "", "no such resource in the document")
        return body

    def attribute(self, rtype: str, name: str, attr: str) -> str:
        body = self.body(rtype, name)
        if rtype == "google_service_account":
            email = f"{body['account_id']}@{body['project']}.iam.gserviceaccount.com"
            values = {"email": email, "member": f"serviceAccount:{email}"}
            values["name"] = values["id"] = f"projects/{body['project']}/serviceAccounts/{email}"
        elif rtype == "google_project_iam_custom_role":
            role = f"projects/{body['project']}/roles/{body['role_id']}"
            values = {"name": role, "id": role}
        else:  # a target's own arguments: name, secret_id, repository_id, location, ...
            values = {k: v for k, v in body.items() if isinstance(v, str)}
        if attr not in values:
            raise self.error(rtype, name, attr, "cannot resolve this attribute")
        return values[attr]

    def value(self, rtype: str, name: str, field: str) -> str:
        raw = self.body(rtype, name).get(field)
        if not isinstance(raw, str):
            raise self.error(rtype, name, field, "expected a string")
        out = _REF.sub(lambda m: self.attribute(m[1], m[2], m[3]), raw)
        return out.replace("$${", "${").replace("%%{", "%{")


def _scope(doc: _Doc, kind: str, rtype: str, name: str) -> Scope:
    def last(field: str) -> str:
        return doc.value(rtype, name, field).rpartition("/")[2]

    if kind == "project":
        return Scope("project", doc.value(rtype, name, "project"))
    if kind == "bucket":
        return Scope("bucket", last("bucket"))
    if kind == "secret":
        return Scope("secret", last("secret_id"))
    if kind == "repository":
        return Scope("repository", last("repository"), doc.value(rtype, name, "location"))
    if kind == "endpointsService":
        return Scope("endpointsService", doc.value(rtype, name, "service_name"))
    return Scope("serviceAccount", last("service_account_id").lower())


def _members(doc: _Doc, rtype: str, name: str, authoritative: bool) -> list[str]:
    body = doc.body(rtype, name)
    raws = body.get("members") if authoritative else [body.get("member")]
    field = "members" if authoritative else "member"
    if not isinstance(raws, list):
        raise doc.error(rtype, name, field, "expected a list of members")
    out = []
    for i, raw in enumerate(raws):
        if not isinstance(raw, str):
            raise doc.error(rtype, name, field, "expected a string")
        text = _REF.sub(lambda m: doc.attribute(m[1], m[2], m[3]), raw)
        try:
            out.append(canonical_member(text))
        except ValueError as exc:
            loc = f"{field}[{i}]" if authoritative else field
            raise doc.error(rtype, name, loc, str(exc)) from None
    return out


def policy_set_from_terraform(
    document: Mapping[str, Any], project: str, source: str = "terraform"
) -> PolicySet:
    doc = _Doc(document, source)
    groups: dict[tuple[Scope, str, PolicyCondition | None], tuple[list[str], list[str]]] = {}
    for rtype in sorted(doc.resources):
        base, _, suffix = rtype.rpartition("_")
        kind = _KINDS.get(base)
        if kind is None or suffix not in ("member", "binding"):
            continue
        for name, body in doc.resources[rtype].items():
            scope = _scope(doc, kind, rtype, name)
            if kind == "project" and scope.name != project:
                raise doc.error(
                    rtype, name, "project", f"binds project {scope.name}, not {project}"
                )
            cond = body.get("condition")
            condition = (
                PolicyCondition(
                    cond.get("title", ""), cond["expression"], cond.get("description", "")
                )
                if isinstance(cond, dict)
                else None
            )
            role = doc.value(rtype, name, "role")
            members, wheres = groups.setdefault((scope, role, condition), ([], []))
            members += _members(doc, rtype, name, suffix == "binding")
            wheres.append(f"{source}: {rtype}.{name}")
    by_scope: dict[Scope, list[PolicyBinding]] = {}
    for (scope, role, condition), (members, wheres) in groups.items():
        binding = PolicyBinding(role, tuple(dict.fromkeys(members)), condition, ", ".join(wheres))
        by_scope.setdefault(scope, []).append(binding)
    project_scope = Scope("project", project)
    roles = tuple(
        RoleDefinition(
            name=doc.attribute("google_project_iam_custom_role", name, "name"),
            title=str(body.get("title", "")),
            stage=str(body.get("stage", "GA")),
            permissions=frozenset(body.get("permissions", ())),
        )
        for name, body in doc.resources.get("google_project_iam_custom_role", {}).items()
    )
    return PolicySet(
        project=Policy(project_scope, tuple(by_scope.pop(project_scope, ())), source),
        resources=tuple(Policy(s, tuple(bs), source) for s, bs in by_scope.items()),
        roles=roles,
        roles_given=True,
    )
