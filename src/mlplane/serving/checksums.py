"""File checksums as Cloud Storage reports them, plus sha256.

GCS object metadata carries `md5Hash` and `crc32c`, both base64 of the big-endian digest; we record
the same strings so an uploaded artifact can be compared with `gcloud storage objects describe`
without conversion, and sha256 (hex) as the primary integrity check. CRC32C (Castagnoli) is pure
Python here, table-driven: fine for model manifests of kilobytes to a few megabytes.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C of `data` (continuing from `crc`); crc32c(b"123456789") == 0xE3069283."""
    table = _TABLE
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


@dataclass(frozen=True)
class FileChecksums:
    """One file's size and digests; `md5_hash` and `crc32c` in GCS's base64 form."""

    size: int
    sha256: str
    md5_hash: str
    crc32c: str

    @classmethod
    def of(cls, data: bytes) -> FileChecksums:
        return cls(
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            md5_hash=base64.b64encode(hashlib.md5(data).digest()).decode(),
            crc32c=base64.b64encode(crc32c(data).to_bytes(4, "big")).decode(),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "sha256": self.sha256,
            "md5Hash": self.md5_hash,
            "crc32c": self.crc32c,
        }

    @classmethod
    def from_json(cls, value: object) -> FileChecksums:
        """Raises ValueError naming the missing or mistyped key."""
        if not isinstance(value, dict):
            raise ValueError("expected an object with size, sha256, md5Hash and crc32c")
        size = value.get("size")
        if type(size) is not int or size < 0:
            raise ValueError("'size' must be a non-negative integer")
        strings = []
        for key in ("sha256", "md5Hash", "crc32c"):
            v = value.get(key)
            if not isinstance(v, str) or not v:
                raise ValueError(f"'{key}' must be a non-empty string")
            strings.append(v)
        return cls(size, *strings)

    def mismatch(self, data: bytes) -> str | None:
        """None when `data` matches; otherwise which checksum differs, expected vs actual."""
        actual = FileChecksums.of(data)
        for label, want, got in (
            ("size", self.size, actual.size),
            ("sha256", self.sha256, actual.sha256),
            ("md5Hash", self.md5_hash, actual.md5_hash),
            ("crc32c", self.crc32c, actual.crc32c),
        ):
            if want != got:
                return f"{label} mismatch: recorded {want}, file has {got}"
        return None
