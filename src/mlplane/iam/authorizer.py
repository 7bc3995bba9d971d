"""authorize(principal, action or permissions, resource) -> Decision, on a CompiledPolicy.

Evaluation follows GCP IAM: a principal holds a permission on a resource when a binding for the
principal (or a group it belongs to) grants it on that resource or on the project that contains
it, and the binding's condition (if any) holds for the resource.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlplane.errors import ConfigError
from mlplane.iam.compiled import ActionGrant, ActionInfo, CompiledGrant, CompiledPolicy
from mlplane.iam.decision import Decision
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

# Resource kinds whose IAM policy also governs sub-resources of the same name, as on GCP (an
# Endpoints service's policy covers its configs and rollouts: services/NAME/configs/ID).
CHILD_KINDS = {"endpointsService": ("endpointsConfig",)}
IMPERSONATION = (
    "iam.serviceAccounts.actAs",
    "iam.serviceAccounts.getAccessToken",
    "iam.serviceAccounts.signBlob",
    "iam.serviceAccounts.signJwt",
    "iam.serviceAccounts.implicitDelegation",
    "iam.serviceAccounts.getOpenIdToken",
)


class Authorizer:
    def __init__(self, policy: CompiledPolicy) -> None:
        self.policy = policy
        self._group_of: dict[str, list[str]] = {}
        for group, users in policy.groups.items():
            for u in users:
                self._group_of.setdefault(u, []).append(f"group:{group}")
        self._identity_of = {email: ident for ident, email in policy.identities.items()}

    # ------------------------------------------------------------------ principals

    def principal(self, text: str) -> Principal:
        """Parse a principal named on the command line (`iam check --principal`): an IAM member, a
        bare email (a user), or an identity id (its SA)."""
        text = text.strip()
        if text in self.policy.identities:
            return Principal("serviceAccount", self.policy.identities[text])
        if ":" not in text and "@" in text:
            text = f"user:{text}"
        try:
            return Principal.parse(text)
        except ValueError as exc:
            known = ", ".join(sorted(self.policy.identities))
            raise ConfigError("--principal", "", f"{exc}; or name an identity: {known}") from None

    def members_of(self, principal: Principal) -> list[str]:
        members = [principal.member]
        if principal.kind == "user":
            members += self._group_of.get(principal.email, [])
            domain = principal.email.partition("@")[2]
            members.append(f"domain:{domain}")
        return members

    def identity_of(self, principal: Principal) -> str | None:
        return self._identity_of.get(principal.email) if principal.is_service_account else None

    # ------------------------------------------------------------------ decisions

    def authorize(
        self,
        principal: Principal,
        what: str | Sequence[str],
        resource: ResourceRef | None = None,
    ) -> Decision:
        """Decide an action id (checked at each of its grants' scopes, or on `resource`) or one
        or more permission names (checked on `resource`, default the project)."""
        project_ref = ResourceRef.project_root(self.policy.project)
        if isinstance(what, str) and what in self.policy.actions:
            action = self.policy.actions[what]
            checks = [
                (g.permissions, self._target(g, resource) or project_ref) for g in action.grants
            ]
            return self._decide(principal, checks, resource or project_ref, action=what)
        perms = (what,) if isinstance(what, str) else tuple(what)
        return self._decide(principal, [(perms, resource or project_ref)], resource or project_ref)

    def holds(self, principal: Principal, permission: str, resource: ResourceRef) -> str | None:
        """The role granting `permission` on `resource` to `principal`, or None. `[team] admins`
        hold roles/owner on the project, as on GCP (outside the model; the audit says so)."""
        members = self.members_of(principal)
        if (
            self.policy.admins
            and any(m in self.policy.admins for m in members)
            and (not resource.project or resource.project == self.policy.project)
        ):
            return "roles/owner"
        for member in members:
            for grant in self.policy.grants.get(member, {}).get(permission, ()):
                if self._covers(grant, resource):
                    return grant.role
        return None

    def may_act_as(self, principal: Principal, identity: str) -> Decision:
        email = self.policy.identities[identity]
        ref = ResourceRef("serviceAccount", email, self.policy.project)
        return self.authorize(principal, "iam.serviceAccounts.actAs", ref)

    def may_invoke(self, principal: Principal, trigger: str) -> Decision | None:
        """Cloud Build has no per-trigger IAM: the model's own check that `principal` holds the
        "invoke" action of `trigger`'s process (the users' action granting
        `cloudbuild.builds.create`), or None when the model names none. The client checks it
        before sending, the local agent when it runs the trigger."""
        process = self.policy.triggers[trigger].process
        invoke = next(
            (
                a.id
                for a in self.policy.actions.values()
                if a.process == process
                and a.who in ("user", "both")
                and any("cloudbuild.builds.create" in g.permissions for g in a.grants)
            ),
            None,
        )
        return None if invoke is None else self.authorize(principal, invoke)

    def _target(self, grant: ActionGrant, resource: ResourceRef | None) -> ResourceRef | None:
        if resource is not None and (
            grant.scope_kind in ("project", resource.kind)
            or resource.kind in CHILD_KINDS.get(grant.scope_kind, ())
        ):
            return resource
        if grant.scope_kind == "project":
            return None
        return ResourceRef(grant.scope_kind, grant.scope_name, self.policy.project)

    def _covers(self, grant: CompiledGrant | ActionGrant, resource: ResourceRef) -> bool:
        if resource.project and resource.project != self.policy.project:
            return False
        if grant.scope_kind == "project":
            if grant.condition:
                from mlplane.iam.conditions import holds  # conditional grants only

                return holds(grant.condition, resource.kind, resource.name, self.policy.project)
            return True
        if resource.name != grant.scope_name:
            return False
        return resource.kind == grant.scope_kind or resource.kind in CHILD_KINDS.get(
            grant.scope_kind, ()
        )

    def _decide(
        self,
        principal: Principal,
        checks: list[tuple[tuple[str, ...], ResourceRef]],
        resource: ResourceRef,
        action: str | None = None,
    ) -> Decision:
        granted: dict[str, str] = {}
        missing: list[tuple[str, ResourceRef]] = []
        for perms, target in checks:
            for perm in perms:
                role = self.holds(principal, perm, target)
                if role is None:
                    missing.append((perm, target))
                else:
                    granted[perm] = role
        all_perms = tuple(dict.fromkeys(p for perms, _ in checks for p in perms))
        if not missing:
            return Decision(True, principal, all_perms, resource, granted, action=action)
        from mlplane.iam.sanction import sanctioned_path  # only on denials

        return Decision(
            False,
            principal,
            all_perms,
            resource,
            granted,
            missing=tuple(dict.fromkeys(p for p, _ in missing)),
            sanctioned_path=sanctioned_path(self, principal, missing, action),
            action=action,
        )

    def action_info(self, action_id: str) -> ActionInfo | None:
        return self.policy.actions.get(action_id)
