"""The storage backend protocol: what the local directory store and Cloud Storage both do.

Backends move bytes and metadata; they do not authorize (the store does, for the acting
principal, before calling them) and they raise only mlplane errors (ObjectNotFound,
PreconditionFailed, TransientError, PermissionDenied), never an SDK's.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol

from mlplane.data.artifacts.model import Listing, ObjectMeta


class StorageBackend(Protocol):
    name: str

    def stat(self, bucket: str, name: str) -> ObjectMeta:
        """The live generation's metadata; ObjectNotFound if there is none."""
        ...

    def list(self, bucket: str, prefix: str, delimiter: str | None) -> Listing: ...

    def read(self, bucket: str, name: str, sink: BinaryIO) -> ObjectMeta:
        """Write the live generation's bytes to `sink`; return that generation's metadata."""
        ...

    def write(
        self,
        bucket: str,
        name: str,
        source: BinaryIO,
        *,
        content_type: str,
        if_generation_match: int | None,
    ) -> ObjectMeta:
        """Replace the object with `source`'s bytes, all or nothing, as a new generation.
        `if_generation_match`: 0 = the object must not exist, N = it must be at generation N;
        otherwise PreconditionFailed and nothing is written."""
        ...

    def delete(self, bucket: str, name: str, *, if_generation_match: int | None) -> None: ...
