"""Google's IAM catalog (permissions and predefined roles), shipped with mlplane.

The data comes from the iam-dataset project; provenance and licence are in `catalog_data/`.
Loading is lazy and cached: the role file is ~6 MB unpacked and only some commands need it.
"""

from __future__ import annotations

import difflib
import gzip
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class PredefinedRole:
    name: str
    title: str
    stage: str
    permissions: frozenset[str]


def _read(name: str) -> bytes:
    return gzip.decompress(resources.files("mlplane.iam.catalog_data").joinpath(name).read_bytes())


class Catalog:
    """Permission names and predefined roles, with lookups for suggestions and coverage.
    The roles (6 MB unpacked) load on first use: validating a model needs only the names."""

    def __init__(
        self, permissions: frozenset[str], roles: dict[str, PredefinedRole] | None = None
    ) -> None:
        self.permissions = permissions
        self._roles = roles
        self._by_service: dict[str, list[str]] | None = None

    @property
    def roles(self) -> dict[str, PredefinedRole]:
        if self._roles is None:
            self._roles = _load_roles()
        return self._roles

    def __contains__(self, permission: object) -> bool:
        return permission in self.permissions

    def suggest(self, permission: str, n: int = 3) -> list[str]:
        """Closest real permission names, looked up within the same service first."""
        if self._by_service is None:
            by: dict[str, list[str]] = {}
            for p in self.permissions:
                by.setdefault(p.partition(".")[0], []).append(p)
            self._by_service = by
        pool = self._by_service.get(permission.partition(".")[0]) or list(self.permissions)
        return difflib.get_close_matches(permission, pool, n=n, cutoff=0.6)

    def role(self, name: str) -> PredefinedRole | None:
        return self.roles.get(name)


@cache
def load_catalog() -> Catalog:
    return Catalog(frozenset(_read("permissions.txt.gz").decode().split()))


def _load_roles() -> dict[str, PredefinedRole]:
    raw = json.loads(_read("roles.json.gz"))
    return {
        name: PredefinedRole(
            name=name,
            title=body.get("title", ""),
            stage=body.get("stage", ""),
            permissions=frozenset(body.get("includedPermissions", ())),
        )
        for name, body in raw.items()
    }
