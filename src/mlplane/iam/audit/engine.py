"""Compare the effective grants of a PolicySet with the model's IamPlan.

A grant is a (member, scope, condition) holding a set of permissions: roles are expanded once,
and every comparison is a set operation. A grant on the project covers every resource in it; a
conditional grant is covered by the model's unconditional grant or by one with the same
expression. Members are compared as IAM strings: groups are not expanded.
"""

from __future__ import annotations

import gc
import re
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
# The identities a build runs as when it names none: the legacy Cloud Build service account and
# the Compute Engine default service account (the default for projects created since 2024).
DEFAULT_BUILD_IDENTITY = re.compile(
    r"serviceAccount:(\d+@cloudbuild\.gserviceaccount\.com"
    r"|\d+-compute@developer\.gserviceaccount\.com)"
)
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
    """One audit run. Permission sets are bit sets of `roles.space` (mlplane.iam.audit.bits).
    Each phase yields its findings as it finds them."""

    model: ModelIndex
    roles: RoleTable
    admins: frozenset[str]
    held: dict[GrantKey, _Held] = field(default_factory=dict)
    aside: dict[tuple[str, str, ScopeKey], _Held] = field(default_factory=dict)
    have: dict[GrantKey, int] = field(default_factory=dict)  # for the model's members only
    _impersonation: int = 0  # IMPERSONATION_PERMISSIONS as bits

    def __post_init__(self) -> None:
        self._impersonation = self.roles.space.mask(IMPERSONATION_PERMISSIONS)

    def finding(
        self, sev: Severity, code: str, key: GrantKey, why: str, h: _Held, perms: int = 0
    ) -> Finding:
        return Finding(
            sev, code, key[0], scope_label(key[1]), why, perms, tuple(dict.fromkeys(h.roles)),
            h.condition_title, tuple(dict.fromkeys(h.sources)), self.roles.space,
        )  # fmt: skip

    # ---------------------------------------------------------------- reading the policies

    def collect(self, policies: PolicySet) -> Iterator[Finding]:
        for policy in policies.policies:
            scope = policy.scope
            sk = self.model.project if scope.kind == "project" else (scope.kind, scope.name)
            for b in policy.bindings:
                perms = self.roles.mask(b.role)
                cond, title = (b.condition.key, b.condition.title) if b.condition else ("", "")
                for m in b.members:
                    kind = member_kind(m)
                    if kind in _ASIDE:
                        h = self.aside.setdefault((_ASIDE[kind], m, sk), _Held())
                    else:
                        key = (m, sk, cond)
                        h = self.held.get(key) or self.held.setdefault(key, _Held([], [], title))
                        if perms is None or kind == "public" or b.role in BASIC_ROLES:
                            one = _Held([b.role], [b.where], title)
                            yield from self._role_findings(key, kind, one, perms)
                            h.opaque |= perms is None
                    h.roles.append(b.role)
                    h.sources.append(b.where)

    def _role_findings(
        self, key: GrantKey, kind: str, one: _Held, perms: int | None
    ) -> Iterator[Finding]:
        role = one.roles[0]
        if kind == "public":
            anyone = "anyone" if key[0] == "allUsers" else "anyone with a Google account"
            why = f"{key[0]} ({anyone}) holds {role}"
            yield self.finding(Severity.CRITICAL, "PUBLIC_PRINCIPAL", key, why, one, perms or 0)
        if role in BASIC_ROLES:
            admin = key[0] in self.admins
            why = (
                f"{'a declared admin' if admin else key[0]} holds the basic role {role} "
                "(thousands of permissions across services); use the model's custom roles"
            )
            sev = Severity.LOW if admin else BASIC_ROLES[role]
            yield self.finding(sev, "BASIC_ROLE", key, why, one)
        if perms is None:
            code, why = self.roles.problems[role]
            yield self.finding(Severity.MEDIUM, code, key, why, one)

    # ---------------------------------------------------------------- comparing

    def excess(self) -> Iterator[Finding]:
        model = self.model
        for key, h in self.held.items():
            perms = 0
            for r in dict.fromkeys(h.roles):
                perms |= self.roles.mask(r) or 0
            if key[0] not in model.anywhere:
                if perms:
                    yield from self._classify(key, h, perms)
                continue
            self.have[key] = perms
            covered = 0
            for k in _covering(key, model.project):
                g = model.grants.get(k)
                if g is not None:
                    covered |= g.mask
            extra = perms & ~covered
            if extra:
                yield from self._classify(key, h, extra)

    def _classify(self, key: GrantKey, h: _Held, extra: int) -> Iterator[Finding]:
        """Split excess permissions into the most specific finding for each."""
        member, sk, _ = key
        model = self.model
        expansions = {r: p for r in dict.fromkeys(h.roles) if (p := self.roles.mask(r))}

        def report(sev: Severity, code: str, why: str, perms: int) -> Finding:
            roles = [r for r, p in expansions.items() if p & perms]
            sources = [s for r, s in zip(h.roles, h.sources, strict=True) if r in roles]
            return self.finding(
                sev, code, key, why, _Held(roles, sources, h.condition_title), perms
            )

        if member in self.admins:
            why = f"{_ASIDE_WHY['ADMIN_GRANT']} ({extra.bit_count()} permissions)"
            yield report(Severity.INFO, "ADMIN_GRANT", why, extra)
            return
        is_sa = member_kind(member) == "serviceAccount"
        target = sk == model.project or (
            sk[0] == "serviceAccount"
            and sk[1] in model.service_accounts
            and member != f"serviceAccount:{sk[1]}"
        )
        imp = extra & self._impersonation if target else 0
        if imp:
            whom = "every service account of the project" if sk[0] == "project" else sk[1]
            why = (
                f"may act as or mint credentials for {whom}, bypassing the CI triggers and "
                "runtime identities the model routes work through"
            )
            yield report(Severity.HIGH if is_sa else Severity.CRITICAL, "IMPERSONATION", why, imp)
            extra &= ~imp
        sa_only = 0 if is_sa else extra & model.service_account_only_mask
        if sa_only:
            why = "holds permissions the model grants only to service accounts"
            yield report(Severity.HIGH, "USER_HOLDS_SA_PERMISSION", why, sa_only)
            extra &= ~sa_only
        anywhere = model.anywhere_mask.get(member)
        broader = extra & anywhere if anywhere and sk == model.project else 0
        if broader:
            where = ", ".join(model.where(member, broader))
            why = f"granted on the whole project; the model grants these only on {where}"
            yield report(Severity.MEDIUM, "BROADER_SCOPE", why, broader)
            extra &= ~broader
        if extra:
            n = extra.bit_count()
            why = (
                f"{n} permission(s) beyond what the model grants here"
                if anywhere is not None
                else f"not a principal of the model; holds {n} permission(s) here"
            )
            yield report(Severity.MEDIUM, "EXCESS", why, extra)

    def missing(self) -> Iterator[Finding]:
        for key, g in self.model.grants.items():
            covering = _covering(key, self.model.project)
            if any(self.held[k].opaque for k in covering if k in self.held):
                continue  # an unexpandable role may grant them; that is reported instead
            have = 0
            for k in covering:
                have |= self.have.get(k, 0)
            lacking = g.mask & ~have
            if lacking:
                why = f"the model grants these for {', '.join(g.actions)}; the policy does not"
                held = _Held(g.roles, [], g.condition_title)
                yield self.finding(Severity.LOW, "MISSING", key, why, held, lacking)

    def builds(self) -> Iterator[Finding]:
        """Users who may create arbitrary Cloud Build builds while a default build account holds
        permissions (docs/decisions/0202).

        `cloudbuild.builds.create` lets its holder run any build steps; a build that names no
        service account runs as the project's default build account. Whatever that account
        holds, every such user holds too: high. When no default build account holds anything,
        a build gets nothing beyond the model and the grant is the model's own (decision
        0006): no finding."""
        project = self.model.project
        build_bit = self.roles.space.mask(("cloudbuild.builds.create",))
        reach = 0
        accounts: list[str] = []
        roles: list[str] = []
        sources: list[str] = []
        holders: dict[str, _Held] = {}
        for (member, sk, cond), h in self.held.items():
            perms = 0
            for r in dict.fromkeys(h.roles):
                perms |= self.roles.mask(r) or 0
            if DEFAULT_BUILD_IDENTITY.fullmatch(member) and perms:
                reach |= perms
                accounts.append(member.partition(":")[2])
                roles += h.roles
                sources += h.sources
            elif (
                sk == project
                and not cond
                and perms & build_bit
                and member_kind(member) in ("user", "group", "domain")
            ):
                holders[member] = h
        if not reach:
            return
        who = ", ".join(sorted(set(accounts)))
        why = (
            "may run any build steps (`gcloud builds submit`) as the default build account "
            f"{who}, which holds {reach.bit_count()} permissions; remove that account's roles "
            "(or enforce constraints/cloudbuild.useBuildServiceAccount and "
            "constraints/cloudbuild.useComputeServiceAccount)"
        )
        for member, h in holders.items():
            held = _Held([*h.roles, *roles], [*h.sources, *sources], "")
            yield self.finding(
                Severity.HIGH, "ARBITRARY_BUILD", (member, project, ""), why, held, reach
            )

    def asides(self) -> Iterator[Finding]:
        for (code, member, sk), h in self.aside.items():
            sev = Severity.LOW if code == "DELETED_PRINCIPAL" else Severity.INFO
            yield self.finding(sev, code, (member, sk, ""), _ASIDE_WHY[code], h)


def _covering(key: GrantKey, project: ScopeKey) -> set[GrantKey]:
    """The grant keys whose permissions reach `key`: the same scope or the project, without a
    condition or with the same one."""
    member, sk, cond = key
    return {(member, sk, ""), (member, project, ""), (member, sk, cond), (member, project, cond)}


def iter_findings(
    plan: IamPlan,
    policies: PolicySet,
    catalog: Catalog | None = None,
    admins: Iterable[str] = (),
) -> Iterator[Finding]:
    """Findings for `policies` measured against `plan`, in the order they are found: grants
    that are findings by themselves while the policies are read, then excess, missing and
    housekeeping. Memory is the policies' grants, not the findings: each is yielded and kept
    only by the caller."""
    catalog = catalog or load_catalog()
    roles = RoleTable(catalog, policies)
    run = _Audit(
        model=index_plan(plan, roles.space),
        roles=roles,
        admins=frozenset(canonical_member(a) for a in admins),
    )
    with _cycle_collector_paused():
        yield from run.collect(policies)
        yield from run.excess()
        yield from run.missing()
        yield from run.builds()
        yield from run.asides()


def audit(
    plan: IamPlan,
    policies: PolicySet,
    catalog: Catalog | None = None,
    admins: Iterable[str] = (),
) -> AuditReport:
    """Findings for `policies` measured against `plan`, most severe first."""
    findings = sorted(iter_findings(plan, policies, catalog, admins), key=Finding.sort_key)
    return AuditReport(plan.project, tuple(findings))


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
