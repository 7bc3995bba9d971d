"""Role expansion for an audit: predefined roles from the shipped catalog, custom roles from the
policy set. Each role is expanded once; unknown and unexpandable roles expand to None."""

from __future__ import annotations

from mlplane.iam.audit.bits import PermissionSpace
from mlplane.iam.audit.findings import Severity
from mlplane.iam.audit.policy import PolicySet
from mlplane.iam.catalog import Catalog

BASIC_ROLES: dict[str, Severity] = {
    "roles/owner": Severity.HIGH,
    "roles/editor": Severity.HIGH,
    "roles/viewer": Severity.MEDIUM,
}


class RoleTable:
    def __init__(
        self, catalog: Catalog, policies: PolicySet, space: PermissionSpace | None = None
    ) -> None:
        self._catalog = catalog
        self._custom = {r.name: r for r in policies.roles}
        self._roles_given = policies.roles_given
        self._cache: dict[str, frozenset[str] | None] = {}
        self._masks: dict[str, int | None] = {}
        self.space = space or PermissionSpace(catalog.permissions)
        self.problems: dict[str, tuple[str, str]] = {}  # role -> (finding code, explanation)

    def mask(self, role: str) -> int | None:
        """The role's permissions as a bit set of `space`; None when it cannot be expanded."""
        try:
            return self._masks[role]
        except KeyError:
            perms = self.expand(role)
            m = self._masks[role] = None if perms is None else self.space.mask(perms)
            return m

    def expand(self, role: str) -> frozenset[str] | None:
        try:
            return self._cache[role]
        except KeyError:
            perms = self._cache[role] = self._expand(role)
            return perms

    def _expand(self, role: str) -> frozenset[str] | None:
        if role.startswith("roles/"):
            predefined = self._catalog.role(role)
            if predefined is None:
                self.problems[role] = (
                    "UNKNOWN_ROLE",
                    f"{role} is not in Google's role catalog shipped with mlplane (a new or "
                    "misspelled role); its permissions cannot be checked",
                )
                return None
            return predefined.permissions
        custom = self._custom.get(role)
        if custom is None:
            hint = (
                "it is missing from --roles"
                if self._roles_given
                else "pass the project's custom roles with --roles"
            )
            self.problems[role] = (
                "UNKNOWN_ROLE",
                f"custom role {role} cannot be expanded: {hint}",
            )
            return None
        if not custom.active:
            return frozenset()
        if custom.permissions is None:
            self.problems[role] = (
                "UNEXPANDABLE_ROLE",
                f"{role} was listed without includedPermissions (`gcloud iam roles list` omits "
                "them); give `gcloud iam roles describe` output to check it",
            )
            return None
        return custom.permissions
