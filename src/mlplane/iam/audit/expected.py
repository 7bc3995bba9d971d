"""The model's side of an audit: the IamPlan indexed by (member, scope, condition)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlplane.iam.audit.bits import PermissionSpace
from mlplane.iam.audit.members import canonical_member
from mlplane.iam.synthesis import IamPlan, Scope
from mlplane.model.operational import is_state_action

ScopeKey = tuple[str, str]  # (kind, name); the project is ("project", PROJECT_ID)
GrantKey = tuple[str, ScopeKey, str]  # (member, scope, condition key; "" = unconditional)


def scope_key(scope: Scope) -> ScopeKey:
    return (scope.kind, scope.name)


def scope_label(key: ScopeKey) -> str:
    return "project" if key[0] == "project" else f"{key[0]}:{key[1]}"


def condition_key(expression: str) -> str:
    return " ".join(expression.split())


@dataclass
class ExpectedGrant:
    permissions: set[str] = field(default_factory=set)
    mask: int = 0  # the permissions as bits of the audit's PermissionSpace
    roles: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    condition_title: str = ""


@dataclass
class ModelIndex:
    project: ScopeKey
    grants: dict[GrantKey, ExpectedGrant]
    by_member: dict[str, list[GrantKey]]
    anywhere: dict[str, set[str]]  # member -> every permission the model grants it
    service_account_only: frozenset[str]  # granted only through service-account actions
    service_accounts: frozenset[str]  # emails of the model's identities
    space: PermissionSpace
    anywhere_mask: dict[str, int] = field(default_factory=dict)
    service_account_only_mask: int = 0

    def where(self, member: str, permissions: int) -> list[str]:
        """Scopes (with condition titles) where the model grants any of `permissions`."""
        out = []
        for key in self.by_member.get(member, ()):
            g = self.grants[key]
            if g.mask & permissions:
                cond = f" (if {g.condition_title})" if key[2] else ""
                out.append(scope_label(key[1]) + cond)
        return sorted(set(out))


def index_plan(plan: IamPlan, space: PermissionSpace | None = None) -> ModelIndex:
    grants: dict[GrantKey, ExpectedGrant] = {}
    by_member: dict[str, list[GrantKey]] = {}
    anywhere: dict[str, set[str]] = {}
    user_side: set[str] = set()
    service_side: set[str] = set()
    for b in plan.bindings:
        perms = b.role.permissions
        if not b.holder.startswith("users:"):
            service_side.update(perms)
        elif not all(map(is_state_action, b.actions)):
            # Users' team-state grants hold on the state's bucket alone: object writes stay a
            # service account's everywhere else (artifacts), so the audit keeps flagging them.
            user_side.update(perms)
        cond = condition_key(b.condition.expression) if b.condition else ""
        for raw in b.members:
            member = canonical_member(raw)
            key = (member, scope_key(b.scope), cond)
            g = grants.get(key)
            if g is None:
                g = grants[key] = ExpectedGrant(
                    condition_title=b.condition.title if b.condition else ""
                )
                by_member.setdefault(member, []).append(key)
            g.permissions.update(perms)
            g.roles.append(b.role.name)
            g.actions.extend(a for a in b.actions if a not in g.actions)
            anywhere.setdefault(member, set()).update(perms)
    space = space or PermissionSpace(user_side | service_side)
    for g in grants.values():
        g.mask = space.mask(g.permissions)
    sa_only = frozenset(service_side - user_side)
    return ModelIndex(
        project=("project", plan.project),
        grants=grants,
        by_member=by_member,
        anywhere=anywhere,
        service_account_only=sa_only,
        service_accounts=frozenset(sa.email for sa in plan.service_accounts),
        space=space,
        anywhere_mask={m: space.mask(p) for m, p in anywhere.items()},
        service_account_only_mask=space.mask(sa_only),
    )
