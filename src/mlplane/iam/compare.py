"""How much narrower is each synthesized identity than Google's predefined roles?

For each holder, find a small combination of predefined roles that covers the same permissions
(greedy weighted set cover: repeatedly take the role with the fewest permissions per newly
covered one; exact minimum set cover is NP-hard) and compare permission counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlplane.iam.catalog import Catalog, PredefinedRole
from mlplane.iam.synthesis import IamPlan


@dataclass(frozen=True)
class Comparison:
    subject: str  # a custom role id, or a holder ("identity:training") for its total
    kind: str  # "role" | "holder"
    holder: str
    permissions: int
    predefined_roles: tuple[str, ...]
    predefined_permissions: int
    uncovered: tuple[str, ...]  # permissions no grantable predefined role has (custom-only)

    @property
    def ratio(self) -> float:
        return (
            self.permissions / self.predefined_permissions if self.predefined_permissions else 0.0
        )


def grantable(role: PredefinedRole) -> bool:
    """Roles a team could grant its own principals: not deprecated, not a Google service
    agent's role (those are reserved for Google-managed service agents)."""
    leaf = role.name.rsplit(".", 1)[-1].lower()
    return role.stage != "DEPRECATED" and "serviceagent" not in leaf


def narrowest_cover(
    needed: frozenset[str], roles: dict[str, PredefinedRole]
) -> tuple[list[PredefinedRole], frozenset[str]]:
    usable = [r for r in roles.values() if grantable(r) and r.permissions & needed]
    left = set(needed)
    chosen: list[PredefinedRole] = []
    while left:
        best = min(
            (r for r in usable if r.permissions & left),
            key=lambda r: (len(r.permissions) / len(r.permissions & left), r.name),
            default=None,
        )
        if best is None:
            break
        chosen.append(best)
        left -= best.permissions
    # Drop roles made redundant by later, larger picks.
    for role in list(chosen):
        rest = set().union(*(r.permissions for r in chosen if r is not role))
        if (needed - frozenset(left)) <= rest:
            chosen.remove(role)
    return chosen, frozenset(left)


def _compare(subject: str, kind: str, holder: str, perms: set[str], c: Catalog) -> Comparison:
    roles, uncovered = narrowest_cover(frozenset(perms), c.roles)
    union = set().union(*(r.permissions for r in roles)) if roles else set()
    return Comparison(
        subject=subject,
        kind=kind,
        holder=holder,
        permissions=len(perms),
        predefined_roles=tuple(sorted(r.name for r in roles)),
        predefined_permissions=len(union),
        uncovered=tuple(sorted(uncovered)),
    )


def compare(plan: IamPlan, catalog: Catalog) -> list[Comparison]:
    """Per synthesized role, then per holder (all its roles together)."""
    out: list[Comparison] = []
    holders: dict[str, set[str]] = {}
    for b in plan.bindings:
        holders.setdefault(b.holder, set()).update(b.role.permissions)
        out.append(_compare(b.role.role_id, "role", b.holder, set(b.role.permissions), catalog))
    for holder, perms in holders.items():
        out.append(_compare(holder, "holder", holder, perms, catalog))
    return out
