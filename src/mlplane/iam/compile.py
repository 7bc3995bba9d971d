"""Build a CompiledPolicy from a loaded project and its synthesized plan (the slow path)."""

from __future__ import annotations

from mlplane.iam.compiled import (
    ActionGrant,
    ActionInfo,
    CompiledGrant,
    CompiledPolicy,
    TriggerInfo,
)
from mlplane.iam.loading import LoadedProject
from mlplane.iam.synthesis import IamPlan, resolve_scope


def compile_policy(loaded: LoadedProject, plan: IamPlan) -> CompiledPolicy:
    emails = {sa.identity: sa.email for sa in plan.service_accounts}
    provider = loaded.project.project.provider
    policy = CompiledPolicy(project=plan.project, identities=emails, provider=provider)
    for b in plan.bindings:
        condition = b.condition.expression if b.condition else ""
        grant = CompiledGrant(b.scope.kind, b.scope.name, b.role.role_id, condition)
        for member in b.members:
            per = policy.grants.setdefault(member, {})
            for perm in b.role.permissions:
                per.setdefault(perm, []).append(grant)
        for action in b.actions:
            holders = policy.holders.setdefault(action, [])
            if b.holder not in holders:
                holders.append(b.holder)
    team = loaded.project.team
    policy.groups = {g: [m.lower() for m in ms] for g, ms in team.groups.items()}
    policy.admins = [m.lower() for m in team.admins]
    for a in (*loaded.model.actions, *loaded.model.derived_actions()):
        grants = []
        for g in a.grants:
            scope = resolve_scope(loaded, g, emails)
            expression = g.condition.expression if g.condition else ""
            grants.append(ActionGrant(scope.kind, scope.name, g.permissions, expression))
        policy.actions[a.id] = ActionInfo(
            a.id, a.process, a.who, a.requirement, a.reason, a.via_triggers, tuple(grants)
        )
    for t in loaded.model.triggers:
        policy.triggers[t.name] = TriggerInfo(
            t.name, t.process, emails[t.runs_as], t.event, t.usage
        )
    for p in loaded.model.processes:
        policy.process_members[p.id] = list(loaded.project.process_members(p.id))
    return policy
