"""The IamPlan as structured JSON: accounts, roles with permissions, bindings with their scope,
members, condition, and the actions that justify each (with the requirement and reason when the
loaded project is given)."""

from __future__ import annotations

import json
from typing import Any

from mlplane.iam.loading import LoadedProject
from mlplane.iam.synthesis import Binding, IamPlan

FORMAT = "mlplane.iam-plan/1"


def _binding(b: Binding) -> dict[str, Any]:
    scope: dict[str, str] = {"kind": b.scope.kind, "name": b.scope.name}
    if b.scope.location:
        scope["location"] = b.scope.location
    condition = (
        None
        if b.condition is None
        else {
            "title": b.condition.title,
            "expression": b.condition.expression,
            "resource_type": b.condition.resource_type,
            "name_prefix": b.condition.name_prefix,
        }
    )
    return {
        "role": b.role.name,
        "holder": b.holder,
        "members": list(b.members),
        "scope": scope,
        "condition": condition,
        "actions": list(b.actions),
    }


def plan_document(plan: IamPlan, loaded: LoadedProject | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": FORMAT,
        "project": plan.project,
        "service_accounts": [
            {
                "identity": sa.identity,
                "email": sa.email,
                "account_id": sa.account_id,
                "display_name": sa.display_name,
                "description": sa.description,
                "process": sa.process,
                "kind": sa.kind,
            }
            for sa in plan.service_accounts
        ],
        "roles": [
            {
                "name": r.name,
                "role_id": r.role_id,
                "title": r.title,
                "description": r.description,
                "permissions": sorted(r.permissions),
            }
            for r in plan.roles
        ],
        "bindings": [_binding(b) for b in plan.bindings],
    }
    if loaded is not None:
        used = {a for b in plan.bindings for a in b.actions}
        doc["actions"] = {
            a.id: {
                "process": a.process,
                "who": a.who,
                "requirement": a.requirement,
                "reason": a.reason,
                "via_triggers": list(a.via_triggers),
            }
            for a in (*loaded.model.actions, *loaded.model.derived_actions())
            if a.id in used
        }
    return doc


def render_json(plan: IamPlan, loaded: LoadedProject | None = None) -> str:
    return json.dumps(plan_document(plan, loaded), indent=2) + "\n"
