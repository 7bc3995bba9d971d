"""From the operational model to least-privilege IAM: service accounts, custom roles, bindings.

Holders of permissions are (a) the users of each process (its members, default: the team) and
(b) each identity (service account). A holder's actions are grouped by the scope they are granted
on (and their IAM condition); each group becomes one custom role bound at exactly that scope.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mlplane.errors import ConfigError
from mlplane.iam.loading import LoadedProject
from mlplane.model.operational import Action, Condition, Grant

_ACCOUNT_ID = re.compile(r"[a-z]([-a-z0-9]{4,28})[a-z0-9]")


@dataclass(frozen=True, order=True)
class Scope:
    """Where a binding lives. `name` is the resource's id within the project (bucket name,
    secret id, repository id, Endpoints service name, service-account email)."""

    kind: str
    name: str
    location: str = ""  # repositories only

    def __str__(self) -> str:
        return self.kind if self.kind == "project" else f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class ConditionSpec:
    title: str
    expression: str
    resource_type: str
    name_prefix: str
    managed_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceAccount:
    identity: str
    account_id: str
    email: str
    display_name: str
    description: str
    process: str
    kind: str  # "process" | "runtime"

    @property
    def member(self) -> str:
        return f"serviceAccount:{self.email}"


@dataclass(frozen=True)
class CustomRole:
    role_id: str
    project: str
    title: str
    description: str
    permissions: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"projects/{self.project}/roles/{self.role_id}"


@dataclass(frozen=True)
class Binding:
    role: CustomRole
    holder: str  # "users:training" or "identity:training"
    members: tuple[str, ...]
    scope: Scope
    condition: ConditionSpec | None
    actions: tuple[str, ...]


@dataclass(frozen=True)
class IamPlan:
    project: str
    service_accounts: tuple[ServiceAccount, ...]
    roles: tuple[CustomRole, ...]
    bindings: tuple[Binding, ...]

    def bindings_of(self, holder: str) -> tuple[Binding, ...]:
        return tuple(b for b in self.bindings if b.holder == holder)

    def service_account(self, identity: str) -> ServiceAccount | None:
        return next((s for s in self.service_accounts if s.identity == identity), None)


def _camel(text: str) -> str:
    head, *rest = re.split(r"[-_.]", text)
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def service_accounts(loaded: LoadedProject) -> tuple[ServiceAccount, ...]:
    project = loaded.project
    out = []
    for ident in loaded.model.identities:
        account_id = f"{project.naming.prefix}-{ident.id}"
        if not _ACCOUNT_ID.fullmatch(account_id):
            raise ConfigError(
                str(loaded.path),
                "naming.prefix",
                f"service account id '{account_id}' (prefix + identity '{ident.id}') must be "
                "6-30 lowercase letters, digits or dashes; choose a shorter prefix",
            )
        out.append(
            ServiceAccount(
                identity=ident.id,
                account_id=account_id,
                email=f"{account_id}@{project.project.id}.iam.gserviceaccount.com",
                display_name=f"mlplane {ident.title}",
                description=ident.description[:256],
                process=ident.process,
                kind=ident.kind,
            )
        )
    return tuple(out)


def resolve_scope(loaded: LoadedProject, grant: Grant, accounts: dict[str, str]) -> Scope:
    p = loaded.project
    kind, ref = grant.scope_kind, grant.scope_ref
    if kind == "project":
        return Scope("project", p.project.id)
    if kind == "serviceAccount":
        return Scope(kind, accounts[ref])
    table = {
        "bucket": p.resources.buckets,
        "secret": p.resources.secrets,
        "repository": p.resources.repositories,
        "endpointsService": p.resources.endpoints_services,
    }[kind]
    location = p.project.region if kind == "repository" else ""
    return Scope(kind, p.resolve(table[ref]), location)


def _condition(c: Condition | None) -> ConditionSpec | None:
    if c is None:
        return None
    return ConditionSpec(c.title, c.expression, c.resource_type, c.name_prefix, c.managed_by)


def _role_suffix(scope: Scope, grant: Grant) -> str:
    if scope.kind == "project":
        base = "project"
    elif scope.kind == "serviceAccount":
        base = "sa" + _camel(grant.scope_ref)[:1].upper() + _camel(grant.scope_ref)[1:]
    else:
        ref = _camel(grant.scope_ref)
        base = _camel(scope.kind) + ref[:1].upper() + ref[1:]
    return f"{base}.{grant.condition.id}" if grant.condition else base


def _holder_bindings(
    loaded: LoadedProject,
    holder: str,
    label: str,
    members: tuple[str, ...],
    actions: Iterable[Action],
    accounts: dict[str, str],
) -> list[Binding]:
    project = loaded.project
    groups: dict[tuple[Scope, str], tuple[set[str], list[str], Grant]] = {}
    for action in actions:
        for grant in action.grants:
            scope = resolve_scope(loaded, grant, accounts)
            key = (scope, _role_suffix(scope, grant))
            perms, acts, _ = groups.setdefault(key, (set(), [], grant))
            perms.update(grant.permissions)
            if action.id not in acts:
                acts.append(action.id)
    prefix = project.naming.prefix.replace("-", "_")
    who = _camel(holder.partition(":")[2]) + ("Users" if holder.startswith("users:") else "")
    out = []
    for (scope, suffix), (perms, acts, grant) in sorted(groups.items(), key=lambda kv: kv[0]):
        cond_title = f", {grant.condition.title}" if grant.condition else ""
        role = CustomRole(
            role_id=f"{prefix}.{who}.{suffix}",
            project=project.project.id,
            title=f"mlplane {label} ({scope.kind}{cond_title})"[:100],
            description=f"Generated by mlplane for: {', '.join(acts)}"[:256],
            permissions=tuple(sorted(perms)),
        )
        out.append(Binding(role, holder, members, scope, _condition(grant.condition), tuple(acts)))
    return out


def synthesize(loaded: LoadedProject) -> IamPlan:
    model, project = loaded.model, loaded.project
    accounts = service_accounts(loaded)
    emails = {a.identity: a.email for a in accounts}
    bindings: list[Binding] = []
    for process in model.processes:
        user_actions = [a for a in model.actions if a.process == process.id and a.user_side]
        user_actions += model.derived_actions_of(f"users:{process.id}")
        if user_actions:
            bindings += _holder_bindings(
                loaded,
                f"users:{process.id}",
                f"{process.title} users",
                project.process_members(process.id),
                user_actions,
                emails,
            )
    for ident in model.identities:
        acts = (
            model.identity_actions(ident)
            + model.build_actions(ident)
            + model.derived_actions_of(f"identity:{ident.id}")
        )
        if acts:
            bindings += _holder_bindings(
                loaded,
                f"identity:{ident.id}",
                f"{ident.title} service account",
                (f"serviceAccount:{emails[ident.id]}",),
                acts,
                emails,
            )
    roles = {b.role.role_id: b.role for b in bindings}
    return IamPlan(project.project.id, accounts, tuple(roles.values()), tuple(bindings))
