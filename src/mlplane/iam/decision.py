"""The answer to "may this principal do this on that resource?"."""

from __future__ import annotations

from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef
from mlplane.model.value import Value


class Decision(Value):
    """An allow or deny, with enough context to act on it.

    On allow, `granted_by` maps each permission to the role that grants it. On deny, `missing`
    lists the permissions not held and `sanctioned_path` (when the model has one) says how the
    operation is meant to be performed, e.g. through a CI trigger as a process service account.
    """

    __slots__ = (
        "allowed",
        "principal",
        "permissions",
        "resource",
        "granted_by",
        "missing",
        "sanctioned_path",
        "action",
    )
    allowed: bool
    principal: Principal
    permissions: tuple[str, ...]
    resource: ResourceRef
    granted_by: dict[str, str]
    missing: tuple[str, ...]
    sanctioned_path: str | None
    action: str | None

    def __init__(
        self,
        allowed: bool,
        principal: Principal,
        permissions: tuple[str, ...],
        resource: ResourceRef,
        granted_by: dict[str, str] | None = None,
        missing: tuple[str, ...] = (),
        sanctioned_path: str | None = None,
        action: str | None = None,
    ) -> None:
        self._set(
            allowed=allowed,
            principal=principal,
            permissions=permissions,
            resource=resource,
            granted_by=dict(granted_by or {}),
            missing=missing,
            sanctioned_path=sanctioned_path,
            action=action,
        )

    def __hash__(self) -> int:
        return hash((self.allowed, self.principal, self.permissions, self.resource, self.action))

    def explain(self) -> str:
        what = f"action '{self.action}'" if self.action else ", ".join(self.permissions)
        if self.allowed:
            roles = sorted(set(self.granted_by.values()))
            return (
                f"ALLOW {self.principal} {what} on {self.resource} (granted by {', '.join(roles)})"
            )
        msg = f"DENY {self.principal} {what} on {self.resource}: missing {', '.join(self.missing)}"
        if self.sanctioned_path:
            msg += f". {self.sanctioned_path}"
        return msg
