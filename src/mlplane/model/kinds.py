"""A managed resource's identity and its kind's classes, without the specs.

Stdlib only, so that the state store and provider errors need not import the specs' validation
(pydantic); `compute_base` re-exports these.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Lifecycle(StrEnum):
    """Active kinds come and go with experiments; passive ones are created once at bootstrap."""

    ACTIVE = "active"
    PASSIVE = "passive"


class Mutability(StrEnum):
    """immutable: any change replaces; static: never changed by lifecycle; dynamic: updatable."""

    IMMUTABLE = "immutable"
    STATIC = "static"
    DYNAMIC = "dynamic"


class Verb(StrEnum):
    GET = "get"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, order=True)
class ResourceKey:
    """Identity of a managed resource: its kind and its GCP name.

    Names are unique per kind in an mlplane project (zonal kinds carry their zone in the spec; two
    zonal resources of one kind may not share a name across zones).
    """

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"
