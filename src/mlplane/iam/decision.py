"""The answer to "may this principal do this on that resource?"."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef


@dataclass(frozen=True)
class Decision:
    """An allow or deny, with enough context to act on it.

    On allow, `granted_by` maps each permission to the role that grants it. On deny, `missing`
    lists the permissions not held and `sanctioned_path` (when the model has one) says how the
    operation is meant to be performed, e.g. through a CI trigger as a process service account.
    """

    allowed: bool
    principal: Principal
    permissions: tuple[str, ...]
    resource: ResourceRef
    granted_by: dict[str, str] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    sanctioned_path: str | None = None
    action: str | None = None

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
