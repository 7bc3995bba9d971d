"""Compare the effective grants of a PolicySet with the model's IamPlan.

A grant is a (member, scope, condition) holding a set of permissions: roles are expanded once,
and every comparison is a set operation. A grant on the project covers every resource in it; a
conditional grant is covered by the model's unconditional grant or by one with the same
expression. Members are compared as IAM strings: groups are not expanded.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from mlplane.iam.audit.expected import (
    GrantKey,
    ModelIndex,
    ScopeKey,
    index_plan,
    scope_label,
)
from mlplane.iam.audit.findings import AuditReport, Finding, Severity
from mlplane.iam.audit.members import canonical_member, member_kind
from mlplane.iam.audit.policy import PolicySet
from mlplane.iam.audit.roles import BASIC_ROLES, RoleTable
from mlplane.iam.authorizer import IMPERSONATION
from mlplane.iam.catalog import Catalog, load_catalog
from mlplane.iam.synthesis import IamPlan

# Acting as, minting tokens for, keying, or re-granting a service account.
IMPERSONATION_PERMISSIONS = frozenset(IMPERSONATION) | {
    "iam.serviceAccountKeys.create",
    "iam.serviceAccounts.setIamPolicy",
}
_ASIDE = {
    "deleted": "DELETED_PRINCIPAL",
    "convenience": "CONVENIENCE_MEMBER",
    "agent": "SERVICE_AGENT",
}
_ASIDE_WHY = {
    "DELETED_PRINCIPAL": "the principal was deleted; remove the stale binding",
    "CONVENIENCE_MEMBER": "grants to holders of basic roles on the project (reported separately)",
    "SERVICE_AGENT": "a Google-managed service agent; not part of the model",
    "ADMIN_GRANT": "a declared admin ([team] admins); grants outside the model are not excess",
}


@dataclass
class _Held:
    roles: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    condition_title: str = ""
    opaque: bool = False  # holds a role that could not be expanded


@dataclass
class _Audit:
    model: ModelIndex
    roles: RoleTable
    admins: frozenset[str]
    findings: list[Finding] = field(default_factory=list)
    held: dict[GrantKey, _Held] = field(default_factory=dict)
    aside: dict[tuple[str, str, ScopeKey], _Held] = field(default_factory=dict)
    have: dict[GrantKey, frozenset[str]] = field(default_factory=dict)

    def add(
        self, sev: Severity, code: str, key: GrantKey, why: str, h: _Held, perms: Iterable[str] = ()
    ) -> None:
        self.findings.append(
            Finding(
                sev, code, key[0], scope_label(key[1]), why, frozenset(perms),
                tuple(dict.fromkeys(h.roles)), h.condition_title, tuple(dict.fromkeys(h.sources)),
            )
        )  # fmt: skip

    # ---------------------------------------------------------------- reading the policies

    def collect(self, policies: PolicySet) -> None:
        for policy in policies.policies:
            scope = policy.scope
            sk = self.model.project if scope.kind == "project" else (scope.kind, scope.name)
            for b in policy.bindings:
                perms = self.roles.expand(b.role)
                cond, title = (b.condition.key, b.condition.title) if b.condition else ("", "")
                for m in b.members:
                    kind = member_kind(m)
                    if kind in _ASIDE:
                        h = self.aside.setdefault((_ASIDE[kind], m, sk), _Held())
                    else:
                        key = (m, sk, cond)
                        h = self.held.get(key) or self.held.setdefault(key, _Held([], [], title))
                        if perms is None or kind == "public" or b.role in BASIC_ROLES:
                            self._role_findings(key, kind, _Held([b.role], [b.where], title), perms)
                            h.opaque |= perms is None
                    h.roles.append(b.role)
                    h.sources.append(b.where)

    def _role_findings(
        self, key: GrantKey, kind: str, one: _Held, perms: frozenset[str] | None
    ) -> None:
        role = one.roles[0]
        if kind == "public":
            anyone = "anyone" if key[0] == "allUsers" else "anyone with a Google account"
            why = f"{key[0]} ({anyone}) holds {role}"
            self.add(Severity.CRITICAL, "PUBLIC_PRINCIPAL", key, why, one, perms or ())
        if role in BASIC_ROLES:
            admin = key[0] in self.admins
            why = (
                f"{'a declared admin' if admin else key[0]} holds the basic role {role} "
                "(thousands of permissions across services); use the model's custom roles"
            )
            self.add(Severity.LOW if admin else BASIC_ROLES[role], "BASIC_ROLE", key, why, one)
        if perms is None:
            code, why = self.roles.problems[role]
            self.add(Severity.MEDIUM, code, key, why, one)

    # ---------------------------------------------------------------- comparing

    def excess(self) -> None:
        model = self.model
        for key, h in self.held.items():
            expanded = [p for r in dict.fromkeys(h.roles) if (p := self.roles.expand(r))]
            perms = expanded[0] if len(expanded) == 1 else frozenset().union(*expanded)
            self.have[key] = perms
            covers = (
                [g.permissions for k in _covering(key, model.project) if (g := model.grants.get(k))]
                if key[0] in model.anywhere
                else []
            )
            extra = perms.difference(*covers) if covers else perms
            if extra:
                self._classify(key, h, extra)

    def _classify(self, key: GrantKey, h: _Held, extra: frozenset[str]) -> None:
        """Split excess permissions into the most specific finding for each (no copies of
        large sets: most excess is one role's whole expansion)."""
        member, sk, _ = key
        model = self.model
        expansions = {r: p for r in dict.fromkeys(h.roles) if (p := self.roles.expand(r))}

        def report(sev: Severity, code: str, why: str, perms: frozenset[str]) -> None:
            roles = [r for r, p in expansions.items() if not p.isdisjoint(perms)]
            sources = [s for r, s in zip(h.roles, h.sources, strict=True) if r in roles]
            self.add(sev, code, key, why, _Held(roles, sources, h.condition_title), perms)

        if member in self.admins:
            why = f"{_ASIDE_WHY['ADMIN_GRANT']} ({len(extra)} permissions)"
            return report(Severity.INFO, "ADMIN_GRANT", why, extra)
        is_sa = member_kind(member) == "serviceAccount"
        target = sk == model.project or (
            sk[0] == "serviceAccount"
            and sk[1] in model.service_accounts
            and member != f"serviceAccount:{sk[1]}"
        )
        imp = extra & IMPERSONATION_PERMISSIONS if target else frozenset()
        if imp:
            whom = "every service account of the project" if sk[0] == "project" else sk[1]
            why = (
                f"may act as or mint credentials for {whom}, bypassing the CI triggers and "
                "runtime identities the model routes work through"
            )
            report(Severity.HIGH if is_sa else Severity.CRITICAL, "IMPERSONATION", why, imp)
            extra = extra - imp
        sa_only = frozenset() if is_sa else extra & model.service_account_only
        if sa_only:
            why = "holds permissions the model grants only to service accounts"
            report(Severity.HIGH, "USER_HOLDS_SA_PERMISSION", why, sa_only)
            extra = extra - sa_only
        anywhere = model.anywhere.get(member)
        broader = extra & anywhere if anywhere and sk == model.project else frozenset()
        if broader:
            where = ", ".join(model.where(member, broader))
            why = f"granted on the whole project; the model grants these only on {where}"
            report(Severity.MEDIUM, "BROADER_SCOPE", why, broader)
            extra = extra - broader
        if extra:
            why = (
                f"{len(extra)} permission(s) beyond what the model grants here"
                if anywhere
                else f"not a principal of the model; holds {len(extra)} permission(s) here"
            )
            report(Severity.MEDIUM, "EXCESS", why, extra)
        return None

    def missing(self) -> None:
        for key, g in self.model.grants.items():
            covering = _covering(key, self.model.project)
            if any(self.held[k].opaque for k in covering if k in self.held):
                continue  # an unexpandable role may grant them; that is reported instead
            lacking = g.permissions.difference(*(self.have[k] for k in covering if k in self.have))
            if lacking:
                why = f"the model grants these for {', '.join(g.actions)}; the policy does not"
                self.add(
                    Severity.LOW,
                    "MISSING",
                    key,
                    why,
                    _Held(g.roles, [], g.condition_title),
                    lacking,
                )

    def asides(self) -> None:
        for (code, member, sk), h in self.aside.items():
            sev = Severity.LOW if code == "DELETED_PRINCIPAL" else Severity.INFO
            self.add(sev, code, (member, sk, ""), _ASIDE_WHY[code], h)


def _covering(key: GrantKey, project: ScopeKey) -> set[GrantKey]:
    """The grant keys whose permissions reach `key`: the same scope or the project, without a
    condition or with the same one."""
    member, sk, cond = key
    return {(member, sk, ""), (member, project, ""), (member, sk, cond), (member, project, cond)}


def audit(
    plan: IamPlan,
    policies: PolicySet,
    catalog: Catalog | None = None,
    admins: Iterable[str] = (),
) -> AuditReport:
    """Findings for `policies` measured against `plan`, most severe first."""
    run = _Audit(
        model=index_plan(plan),
        roles=RoleTable(catalog or load_catalog(), policies),
        admins=frozenset(canonical_member(a) for a in admins),
    )
    with _cycle_collector_paused():
        run.collect(policies)
        run.excess()
        run.missing()
        run.asides()
        return AuditReport(plan.project, tuple(sorted(run.findings, key=Finding.sort_key)))


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """The audit allocates tens of thousands of acyclic containers, some holding thousands of
    permissions, and CPython's cycle collector re-traverses each of them: about half the run
    time at 10,000 bindings (bench/bench_audit.py). Nothing here forms a reference cycle, so
    pausing the collector delays no memory; reference counting frees everything as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
