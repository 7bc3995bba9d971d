"""Objects with generations, as Cloud Storage keeps them: what the team state needs of a store.

A store is one bucket. Every write and delete names the generation it expects
(`if_generation_match`; 0: "no live object"), so a writer that read generation G overwrites G
or nothing: Cloud Storage's preconditions, which the team state uses as its lock and its guard
against lost updates (docs/decisions/1500-team-state-in-cloud-storage.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mlplane.errors import PermanentError


@dataclass(frozen=True)
class StoredObject:
    uri: str  # gs://BUCKET/NAME
    generation: int
    size: int
    md5_hash: str = ""  # base64, as Cloud Storage gives it ("" when unknown)
    updated: str = ""  # RFC 3339


class GenerationMismatch(PermanentError):
    """A generation precondition did not hold (Cloud Storage's 412 `conditionNotMet`, or 404 on
    a conditional delete): someone else wrote or deleted the object since it was read. The
    request had no effect."""

    def __init__(self, uri: str, expected: int) -> None:
        self.uri = uri
        self.expected = expected
        want = "no object" if expected == 0 else f"generation {expected}"
        super().__init__(f"{uri}: expected {want}, but it changed (412 conditionNotMet)")


class ObjectStore(Protocol):
    def uri(self, name: str) -> str:
        """`gs://BUCKET/NAME`."""

    def stat(self, name: str) -> StoredObject | None:
        """The live object's metadata, or None when there is none."""

    def read(self, name: str, generation: int) -> bytes:
        """The bytes of `generation` (raises GenerationMismatch when it is no longer live)."""

    def write(
        self, name: str, data: bytes, *, if_generation_match: int, content_type: str
    ) -> StoredObject:
        """Create or replace the object only if its live generation is `if_generation_match`."""

    def delete(self, name: str, *, if_generation_match: int) -> None:
        """Delete the object only if its live generation is `if_generation_match`."""
