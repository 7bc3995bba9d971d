"""`gs://BUCKET/NAME` URIs, validated so that no object name can leave its bucket.

Rules (GCS's naming rules, tightened where a name could mean a path outside the bucket on a
filesystem): the bucket is 3-63 characters of lowercase letters, digits, `-`, `_` and `.`,
starting and ending with a letter or digit; the object name is at most 1024 bytes of UTF-8 with
no NUL, CR, LF or backslash, no empty component (`gs://b//x`, `gs://b/a//b`: an absolute or
doubled separator) and no `.` or `..` component. A trailing `/` is allowed only where a prefix is
meant (`ls`, a `cp` destination directory).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlplane.data.artifacts.errors import InvalidUri

SCHEME = "gs://"
MAX_NAME_BYTES = 1024
_BUCKET = re.compile(r"[a-z0-9][-a-z0-9_.]{1,61}[a-z0-9]")
_FORBIDDEN = {"\x00": "NUL", "\r": "carriage return", "\n": "line feed", "\\": "backslash"}


@dataclass(frozen=True)
class GsUri:
    """A validated URI. `name` is the object name or prefix ("" for the whole bucket)."""

    bucket: str
    name: str

    @property
    def is_prefix(self) -> bool:
        return self.name == "" or self.name.endswith("/")

    @property
    def basename(self) -> str:
        return self.name.rstrip("/").rpartition("/")[2]

    def child(self, basename: str) -> GsUri:
        """This prefix joined with one more (validated) component."""
        return parse_gs_uri(f"{self}{basename}")

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.name}"


def is_gs_uri(text: str) -> bool:
    return text.startswith(SCHEME)


def parse_gs_uri(text: str, *, prefix: bool = False) -> GsUri:
    """Parse `gs://BUCKET/NAME`. With `prefix`, the name may be empty or end with `/`; without
    it, the URI must name an object. Raises InvalidUri naming the URI and the rule broken."""
    if not isinstance(text, str) or not text.startswith(SCHEME):
        raise InvalidUri(str(text), "not a Cloud Storage URI: write gs://BUCKET/PATH")
    for ch, label in _FORBIDDEN.items():
        if ch in text:
            raise InvalidUri(text, f"contains a {label}, which object names may not")
    bucket, _, name = text[len(SCHEME) :].partition("/")
    if not bucket:
        raise InvalidUri(text, "empty bucket name")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise InvalidUri(
            text,
            f"'{bucket}' is not a bucket name (3-63 of a-z, 0-9, '-', '_', '.'; "
            "starting and ending with a letter or digit)",
        )
    if len(name.encode()) > MAX_NAME_BYTES:
        raise InvalidUri(text, f"object name longer than {MAX_NAME_BYTES} bytes")
    parts = name.split("/")
    inner = parts[:-1] if prefix or name.endswith("/") else parts
    if name and any(p == "" for p in inner):
        where = "at its start (an absolute path)" if parts[0] == "" else "(a doubled '/')"
        raise InvalidUri(text, f"empty path component {where}")
    if any(p in (".", "..") for p in parts):
        raise InvalidUri(text, "'.' and '..' path components are not allowed (they climb)")
    if any(not ch.isprintable() and ch != " " for ch in name):
        raise InvalidUri(text, "control characters are not allowed in object names")
    uri = GsUri(bucket, name)
    if not prefix and uri.is_prefix:
        raise InvalidUri(text, "names a prefix, not an object (add the object's name)")
    return uri
