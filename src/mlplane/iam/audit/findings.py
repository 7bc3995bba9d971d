"""What an audit reports: typed findings, each with a severity, a code and one line of why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"'{text}' is not a severity (one of {names})") from None


# code -> (usual severity, what it means). Severities that depend on the case are noted.
CODES: dict[str, tuple[Severity, str]] = {
    "PUBLIC_PRINCIPAL": (Severity.CRITICAL, "allUsers / allAuthenticatedUsers hold a role"),
    "IMPERSONATION": (
        Severity.CRITICAL,
        "may act as or mint tokens for a model service account (high when the holder is "
        "itself a service account)",
    ),
    "BASIC_ROLE": (
        Severity.HIGH,
        "roles/owner, roles/editor or roles/viewer (viewer: medium; a declared admin: low)",
    ),
    "USER_HOLDS_SA_PERMISSION": (
        Severity.HIGH,
        "a user, group or domain holds a permission the model grants only to service accounts",
    ),
    "BROADER_SCOPE": (
        Severity.MEDIUM,
        "granted project-wide (or unconditionally) where the model grants it narrower",
    ),
    "EXCESS": (Severity.MEDIUM, "permissions the model does not grant this principal here"),
    "UNKNOWN_ROLE": (Severity.MEDIUM, "a role neither in Google's catalog nor in --roles"),
    "UNEXPANDABLE_ROLE": (Severity.MEDIUM, "a custom role given without includedPermissions"),
    "MISSING": (Severity.LOW, "permissions the model needs that the policy does not grant"),
    "DELETED_PRINCIPAL": (Severity.LOW, "a binding for a deleted principal (stale)"),
    "ADMIN_GRANT": (
        Severity.INFO,
        "a declared admin ([team] admins) holds roles outside the model",
    ),
    "SERVICE_AGENT": (Severity.INFO, "a Google-managed service agent (not part of the model)"),
    "CONVENIENCE_MEMBER": (
        Severity.INFO,
        "projectOwner/Editor/Viewer members: effective only through basic roles",
    ),
}


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    principal: str
    scope: str  # "project" or "KIND:NAME"
    explanation: str
    permissions: frozenset[str] = frozenset()  # sorted when presented: see `permission_list`
    roles: tuple[str, ...] = ()
    condition: str = ""  # the condition title, when the grant is conditional
    sources: tuple[str, ...] = ()  # "policy.json: bindings[3]", ...

    def permission_list(self) -> list[str]:
        return sorted(self.permissions)

    def sort_key(self) -> tuple[int, str, str, str, str]:
        return (-self.severity, self.code, self.principal, self.scope, self.condition)

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.label,
            "code": self.code,
            "principal": self.principal,
            "scope": self.scope,
            "condition": self.condition or None,
            "roles": list(self.roles),
            "permissions": self.permission_list(),
            "explanation": self.explanation,
            "sources": list(self.sources),
        }


@dataclass(frozen=True)
class AuditReport:
    project: str
    findings: tuple[Finding, ...]

    def at_or_above(self, threshold: Severity) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity >= threshold)

    def counts(self) -> dict[str, int]:
        c = Counter(f.severity for f in self.findings)
        return {s.label: c.get(s, 0) for s in sorted(Severity, reverse=True)}

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def to_dict(self, fail_on: Severity | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"project": self.project, "summary": self.counts()}
        if fail_on is not None:
            out["fail_on"] = fail_on.label
            out["failed"] = bool(self.at_or_above(fail_on))
        out["findings"] = [f.to_dict() for f in self.findings]
        return out
