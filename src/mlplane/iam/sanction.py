"""On a denial: how the model means the denied operation to be performed, in one sentence."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplane.iam.authorizer import IMPERSONATION
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

if TYPE_CHECKING:
    from mlplane.iam.authorizer import Authorizer
    from mlplane.iam.compiled import ActionInfo


def _paths_for(authz: Authorizer, principal: Principal, action: ActionInfo) -> list[str]:
    policy = authz.policy
    out = []
    what = f"'{action.id}' ({action.requirement.rstrip('.').lower()})"
    project = ResourceRef.project_root(policy.project)
    for name in action.via_triggers:
        trig = policy.triggers[name]
        if trig.event == "manual":
            may = authz.holds(principal, "cloudbuild.builds.create", project)
            tail = "" if may else f"; its invokers are the users of process '{trig.process}'"
            out.append(
                f"{what} runs only through the CI trigger '{name}', as {trig.runs_as}: "
                f"`{trig.usage}`{tail}"
            )
        else:
            out.append(
                f"{what} runs only in the CI trigger '{name}' ({trig.usage}), as {trig.runs_as}"
            )
    if out:
        return out
    holders = policy.holders.get(action.id, [])
    users = [h.partition(":")[2] for h in holders if h.startswith("users:")]
    idents = [h.partition(":")[2] for h in holders if h.startswith("identity:")]
    idents = [i for i in idents if policy.identities[i] != principal.email]  # not "you, not you"
    emails = ", ".join(policy.identities[i] for i in idents)
    accounts = f"the service account{'s' if len(idents) > 1 else ''} {emails}"
    if users and not principal.is_service_account:
        out.append(
            f"{what} is granted to the users of process '{action.process}'; an admin adds you "
            f"under [members] {action.process} (or [team] principals) in mlplane.toml"
        )
        if idents:
            out.append(f"{what} is also performed by {accounts}")
    elif principal.is_service_account and (users or idents):
        by = ([f"the users of process '{action.process}'"] if users else []) + (
            [accounts] if idents else []
        )
        out.append(f"{what} is performed by {' and by '.join(by)}, not by {principal}")
    elif idents:
        out.append(f"{what} is performed by {accounts}")
    return out


def _impersonation(authz: Authorizer, principal: Principal, target: ResourceRef) -> str:
    policy = authz.policy
    ident = next((i for i, e in policy.identities.items() if e == target.name), None)
    allowed = [
        i
        for i, e in policy.identities.items()
        if authz.holds(principal, "iam.serviceAccounts.actAs", ResourceRef("serviceAccount", e))
    ]
    mine = f"; {principal} may attach: {', '.join(allowed)}" if allowed else ""
    if ident is None:
        return f"{target.name} is not an identity of this project's model{mine}"
    triggers = [t.name for t in policy.triggers.values() if t.runs_as == target.name]
    via = f"; its work runs through the CI trigger(s) {', '.join(triggers)}" if triggers else ""
    return (
        f"Acting as the '{ident}' service account is not granted to {principal}: the model "
        f"lets users attach only identities that hold no trigger-only action{via}{mine}"
    )


def sanctioned_path(
    authz: Authorizer,
    principal: Principal,
    missing: list[tuple[str, ResourceRef]],
    action: str | None,
) -> str:
    policy = authz.policy
    perm, target = missing[0]
    if perm in IMPERSONATION and target.kind == "serviceAccount":
        return _impersonation(authz, principal, target)
    candidates = [
        a
        for a in policy.actions.values()
        if any(perm in g.permissions and authz._covers(g, target) for g in a.grants)
    ]
    if action is not None and action in policy.actions:
        candidates = [policy.actions[action]] + [c for c in candidates if c.id != action]
    # Trigger-reserved paths first: they are the document's "only via a CI trigger" rules; the
    # derived `PROCESS.run-builds` actions (a build's own needs) last.
    candidates.sort(key=lambda a: (a.id != action, ".run-builds" in a.id, not a.via_triggers))
    lines: list[str] = []
    for a in candidates:
        for line in _paths_for(authz, principal, a):
            if line not in lines:
                lines.append(line)
    if not lines:
        return (
            f"No action in the operational model grants {perm} on {target}; if the team needs "
            "it, add an action under [[actions]] in mlplane.toml"
        )
    more = f" (and {len(lines) - 2} more paths)" if len(lines) > 2 else ""
    return "Sanctioned path: " + "; ".join(lines[:2]) + more
