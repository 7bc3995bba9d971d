"""What crosses the backend boundary: object metadata as GCS reports it, listings, digests."""

from __future__ import annotations

import base64
import hashlib
import mimetypes
from dataclasses import dataclass
from datetime import datetime

from mlplane.serving.checksums import crc32c as _crc32c_pure

DEFAULT_CONTENT_TYPE = "application/octet-stream"
CHUNK = 1 << 20


_FAST: object | None = None  # google_crc32c when it is there (C); looked up on first use
_LOOKED_UP = False


def _fast_crc32c() -> object | None:
    global _FAST, _LOOKED_UP
    if not _LOOKED_UP:
        _LOOKED_UP = True
        try:  # C implementation, installed with google-cloud-storage (the `gcs` extra)
            import google_crc32c

            if google_crc32c.implementation == "c":
                _FAST = google_crc32c
        except ImportError:
            pass
    return _FAST


def crc32c_is_fast() -> bool:
    """Whether google_crc32c's C implementation is here (google-cloud-storage then checks an
    upload with CRC32C, else with MD5)."""
    return _fast_crc32c() is not None


def crc32c_extend(crc: int, data: bytes) -> int:
    fast = _fast_crc32c()
    if fast is not None:
        return int(fast.extend(crc, data))  # type: ignore[attr-defined]
    return _crc32c_pure(data, crc)


@dataclass(frozen=True)
class ObjectMeta:
    """One object generation's metadata. `md5_hash` and `crc32c` are base64 of the big-endian
    digests, exactly as GCS's `md5Hash` and `crc32c` fields (and `gcloud storage objects
    describe`) show them; `updated` is timezone-aware UTC."""

    bucket: str
    name: str
    size: int
    md5_hash: str
    crc32c: str
    generation: int
    updated: datetime
    content_type: str

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


@dataclass(frozen=True)
class Listing:
    """A list call's result: objects in name order and, with a delimiter, the common prefixes
    ("directories") below the requested prefix, as full prefixes ending with the delimiter."""

    objects: tuple[ObjectMeta, ...]
    prefixes: tuple[str, ...]


class Digest:
    """Size, MD5 and CRC32C of a byte stream, fed in chunks."""

    def __init__(self) -> None:
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._crc = 0

    def update(self, data: bytes) -> None:
        self.size += len(data)
        self._md5.update(data)
        self._crc = crc32c_extend(self._crc, data)

    @property
    def md5_hash(self) -> str:
        return base64.b64encode(self._md5.digest()).decode()

    @property
    def crc32c(self) -> str:
        return base64.b64encode(self._crc.to_bytes(4, "big")).decode()

    def mismatch(self, meta: ObjectMeta) -> str | None:
        """None when these bytes are `meta`'s; else which field differs."""
        for label, want, got in (
            ("size", meta.size, self.size),
            ("md5Hash", meta.md5_hash, self.md5_hash),
            ("crc32c", meta.crc32c, self.crc32c),
        ):
            if want != got:
                return f"{label}: recorded {want}, read {got}"
        return None


def guess_content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or DEFAULT_CONTENT_TYPE
