"""`mlplane iam explain X`: for a permission, a role or an action, which actions need it and why."""

from __future__ import annotations

from dataclasses import dataclass

from mlplane.errors import ConfigError
from mlplane.iam.catalog import Catalog
from mlplane.iam.loading import LoadedProject
from mlplane.iam.synthesis import IamPlan
from mlplane.model.operational import Action, OperationalModel


@dataclass(frozen=True)
class ActionUse:
    action: str
    process: str
    who: str
    requirement: str
    reason: str
    permissions: tuple[str, ...]  # the permissions of the subject this action needs
    holders: tuple[str, ...]
    via_triggers: tuple[str, ...]


@dataclass(frozen=True)
class Explanation:
    subject: str
    kind: str  # "permission" | "predefined role" | "custom role" | "action"
    summary: str
    uses: tuple[ActionUse, ...]
    not_needed: tuple[str, ...] = ()  # a role's permissions that no action needs


def _use(action: Action, perms: set[str], plan: IamPlan) -> ActionUse:
    holders = sorted({b.holder for b in plan.bindings if action.id in b.actions})
    return ActionUse(
        action.id,
        action.process,
        action.who,
        action.requirement,
        action.reason,
        tuple(sorted(perms & action.permissions)),
        tuple(holders),
        action.via_triggers,
    )


def _all(model: OperationalModel) -> tuple[Action, ...]:
    return (*model.actions, *model.derived_actions())


def explain(subject: str, loaded: LoadedProject, plan: IamPlan, catalog: Catalog) -> Explanation:
    model = loaded.model
    action = model.action(subject)
    if action is not None:
        return Explanation(
            subject, "action", action.reason, (_use(action, set(action.permissions), plan),)
        )
    custom = next((r for r in plan.roles if subject in (r.role_id, r.name)), None)
    if custom is not None or subject.startswith("roles/"):
        role = custom or catalog.role(subject)
        if role is None:
            close = [n for n in catalog.roles if subject.split("/")[-1].lower() in n.lower()][:3]
            hint = f"; did you mean {', '.join(close)}" if close else ""
            raise ConfigError("argument", "SUBJECT", f"no role '{subject}'{hint}")
        perms = set(role.permissions)
        uses = tuple(
            _use(a, perms, plan)
            for a in (*model.actions, *model.derived_actions())
            if perms & a.permissions
        )
        needed = set().union(*(set(u.permissions) for u in uses)) if uses else set()
        kind = "custom role" if custom else "predefined role"
        summary = f"{role.title}: {len(perms)} permissions, {len(needed)} needed by the model"
        return Explanation(subject, kind, summary, uses, tuple(sorted(perms - needed)))
    if subject not in catalog:
        close = catalog.suggest(subject)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ConfigError(
            "argument",
            "SUBJECT",
            f"'{subject}' is no action, role or permission in Google's catalog{hint}",
        )
    uses = tuple(
        _use(a, {subject}, plan)
        for a in (*model.actions, *model.derived_actions())
        if subject in a.permissions
    )
    summary = (
        f"needed by {len(uses)} action(s)"
        if uses
        else "no action in the model needs it: synthesized roles do not grant it"
    )
    return Explanation(subject, "permission", summary, uses)
