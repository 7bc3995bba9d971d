"""What an audit reports: typed findings, each with a severity, a code and one line of why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlplane.iam.audit.bits import PermissionSpace


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
    "ARBITRARY_BUILD": (
        Severity.HIGH,
        "a user may create arbitrary Cloud Build builds while a default build account (which "
        "such builds run as) holds permissions",
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
    """One finding. Its permissions are a bit set of `space` (mlplane.iam.audit.bits): listing
    them is what costs at scale, so it happens only when output asks for it."""

    severity: Severity
    code: str
    principal: str
    scope: str  # "project" or "KIND:NAME"
    explanation: str
    mask: int = 0
    roles: tuple[str, ...] = ()
    condition: str = ""  # the condition title, when the grant is conditional
    sources: tuple[str, ...] = ()  # "policy.json: bindings[3]", ...
    space: PermissionSpace | None = field(default=None, compare=False, repr=False)

    @property
    def permissions(self) -> frozenset[str]:
        return self.space.as_set(self.mask) if self.space else frozenset()

    @property
    def permission_count(self) -> int:
        return self.mask.bit_count()

    def permission_list(self, limit: int | None = None) -> list[str]:
        """Sorted; the first `limit` of them when given."""
        return self.space.names_of(self.mask, limit) if self.space else []

    def sort_key(self) -> tuple[int, str, str, str, str]:
        return (-self.severity, self.code, self.principal, self.scope, self.condition)

    def to_json(self, limit: int | None = None, **extra: Any) -> str:
        """`to_dict(limit)` (after `extra` fields) as JSON text; the permission array is joined
        from pre-encoded names, which is most of the work at scale."""
        import json

        data = {**extra, **self.to_dict(0)}
        data.pop("permissions_truncated", None)
        text = json.dumps(data)
        listed = self.space.json_array(self.mask, limit) if self.space else "[]"
        cut = (limit is not None and limit < self.permission_count) and self.permission_count
        tail = ', "permissions_truncated": true}' if cut else "}"
        return text.replace('"permissions": []', '"permissions": ' + listed, 1)[:-1] + tail

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        """`permissions` lists the first `limit` permissions in name order (all when None);
        `permission_count` always counts them all."""
        listed = self.permission_list(limit)
        out = {
            "severity": self.severity.label,
            "code": self.code,
            "principal": self.principal,
            "scope": self.scope,
            "condition": self.condition or None,
            "roles": list(self.roles),
            "permission_count": self.permission_count,
            "permissions": listed,
            "explanation": self.explanation,
            "sources": list(self.sources),
        }
        if len(listed) < self.permission_count:
            out["permissions_truncated"] = True
        return out


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    c = Counter(f.severity for f in findings)
    return {s.label: c.get(s, 0) for s in sorted(Severity, reverse=True)}


@dataclass(frozen=True)
class AuditReport:
    project: str
    findings: tuple[Finding, ...]

    def at_or_above(self, threshold: Severity) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity >= threshold)

    def counts(self) -> dict[str, int]:
        return counts(self.findings)

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def header(self, fail_on: Severity | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"project": self.project, "summary": self.counts()}
        if fail_on is not None:
            out["fail_on"] = fail_on.label
            out["failed"] = bool(self.at_or_above(fail_on))
        return out

    def to_dict(self, fail_on: Severity | None = None, limit: int | None = None) -> dict[str, Any]:
        return {**self.header(fail_on), "findings": [f.to_dict(limit) for f in self.findings]}
