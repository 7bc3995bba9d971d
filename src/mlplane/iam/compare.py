"""How much narrower is each synthesized identity than Google's predefined roles?

For each holder, find a small combination of predefined roles that covers the same permissions
(greedy weighted set cover: repeatedly take the role with the fewest permissions per newly
covered one; exact minimum set cover is NP-hard) and compare permission counts.

Baselines are what a team would grant instead: each permission is covered by a role of its own
service (`storage.objects.get` by a `roles/storage.*` role, not by
`roles/bigquerymigration.orchestrator`, which happens to hold it); only a permission no role of
its service holds falls back to another service's role, and the comparison says so. Roles never
considered: deprecated ones, Google service agents' roles, and the basic roles (owner, editor,
viewer). Each comparison names what it excluded and why (docs/decisions/0903).
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
    cross_service: tuple[str, ...] = ()  # covered by another service's role: none of theirs
    excluded: tuple[str, ...] = ()  # "REASON: N roles (e.g. ROLE)" for roles holding some

    @property
    def ratio(self) -> float:
        return (
            self.permissions / self.predefined_permissions if self.predefined_permissions else 0.0
        )


BASIC = ("roles/owner", "roles/editor", "roles/viewer")


def role_service(name: str) -> str:
    """`roles/storage.objectViewer` -> `storage`; basic roles have none."""
    leaf = name.removeprefix("roles/")
    return leaf.split(".", 1)[0] if "." in leaf else ""


def exclusion(role: PredefinedRole) -> str | None:
    """Why a team would not grant this role to its own principals, or None."""
    if role.stage == "DEPRECATED":
        return "deprecated"
    if "serviceagent" in role.name.rsplit(".", 1)[-1].lower():
        return "reserved for Google's service agents"
    if role.name in BASIC:
        return "basic role (thousands of permissions across services)"
    return None


def grantable(role: PredefinedRole) -> bool:
    return exclusion(role) is None


def not_preferred(role: PredefinedRole) -> str | None:
    """Why a grantable role is a baseline only when no preferred role of its service covers the
    permission: a launch stage before GA, or a role made for a special purpose."""
    title = role.title.lower()
    if role.stage != "GA":
        return f"{role.stage.lower()} launch stage"
    if "legacy" in title:
        return "legacy (ACL compatibility) role"
    if "migration" in title:
        return "migration role"
    return None


@dataclass(frozen=True)
class Cover:
    roles: list[PredefinedRole]
    uncovered: frozenset[str]
    cross_service: frozenset[str]
    excluded: dict[str, list[str]]  # reason -> role names that hold some needed permission


def _greedy(needed: set[str], usable: list[PredefinedRole]) -> list[PredefinedRole]:
    chosen: list[PredefinedRole] = []
    left = set(needed)
    while left:
        best = min(
            (r for r in usable if not r.permissions.isdisjoint(left)),
            key=lambda r: (len(r.permissions) / len(r.permissions & left), r.name),
            default=None,
        )
        if best is None:
            break
        chosen.append(best)
        left -= best.permissions
    return chosen


def narrowest_cover(needed: frozenset[str], roles: dict[str, PredefinedRole]) -> Cover:
    """Cover `needed` in tiers: each service's permissions by its own preferred roles, what is
    left by its own other grantable roles, what is still left by any grantable role."""
    holding = [r for r in roles.values() if not r.permissions.isdisjoint(needed)]
    excluded: dict[str, list[str]] = {}
    usable = []
    for r in holding:
        why = exclusion(r)
        if why:
            excluded.setdefault(why, []).append(r.name)
        else:
            usable.append(r)
    by_service: dict[str, set[str]] = {}
    for p in needed:
        by_service.setdefault(p.split(".", 1)[0], set()).add(p)
    chosen: list[PredefinedRole] = []

    def take(perms: set[str], candidates: list[PredefinedRole]) -> set[str]:
        picked = _greedy(perms, candidates)
        chosen.extend(r for r in picked if r not in chosen)
        return perms - set().union(*(r.permissions for r in picked)) if picked else perms

    rest: set[str] = set()
    for service, perms in sorted(by_service.items()):
        own = [r for r in usable if role_service(r.name) == service]
        left = take(perms, [r for r in own if not_preferred(r) is None])
        rest |= take(left, own) if left else set()
    cross = frozenset(rest - take(rest, usable)) if rest else frozenset()
    used = {r.name for r in chosen}
    for r in usable:
        if r.name in used:
            continue
        own_service = any(role_service(r.name) == s for s in by_service)
        why = (not_preferred(r) or "larger per permission covered") if own_service else None
        excluded.setdefault(why or "another service's role", []).append(r.name)
    # Drop roles made redundant by later picks.
    reached = set(needed) & (set().union(*(r.permissions for r in chosen)) if chosen else set())
    for role in list(chosen):
        others_union = set().union(*(r.permissions for r in chosen if r is not role))
        if reached <= others_union:
            chosen.remove(role)
    return Cover(chosen, frozenset(set(needed) - reached), cross, excluded)


def _excluded_text(excluded: dict[str, list[str]]) -> tuple[str, ...]:
    out = []
    for why, names in sorted(excluded.items()):
        names = sorted(names)
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        out.append(f"{why}: {names[0]}{more}")
    return tuple(out)


def _compare(subject: str, kind: str, holder: str, perms: set[str], c: Catalog) -> Comparison:
    cover = narrowest_cover(frozenset(perms), c.roles)
    union = set().union(*(r.permissions for r in cover.roles)) if cover.roles else set()
    return Comparison(
        subject=subject,
        kind=kind,
        holder=holder,
        permissions=len(perms),
        predefined_roles=tuple(sorted(r.name for r in cover.roles)),
        predefined_permissions=len(union),
        uncovered=tuple(sorted(cover.uncovered)),
        cross_service=tuple(sorted(cover.cross_service)),
        excluded=_excluded_text(cover.excluded),
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
