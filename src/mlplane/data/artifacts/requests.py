"""The Cloud Storage JSON API calls the `gcs` backend makes (google-cloud-storage), as
`--dry-run` prints them; nothing here sends anything.

- A write is `Blob.upload_from_file` without a size, which the library makes a resumable
  upload: a POST to `/upload/storage/v1/b/BUCKET/o?uploadType=resumable` with the
  preconditions (`ifGenerationMatch`) and the object's metadata (`{"name": ...}`; the content
  type goes in `X-Upload-Content-Type`), then PUTs of the bytes to the session URI that POST
  returns, in chunks of 100 MiB (`Content-Range: bytes A-B/*`; the last chunk, shorter,
  carries the total, and `X-Goog-Hash` with the whole object's CRC32C, or its MD5 without
  google_crc32c's C implementation, which the server checks).
- A delete is `DELETE /storage/v1/b/BUCKET/o/NAME?[ifGenerationMatch=N&]prettyPrint=false`.

The host is Google's, or `STORAGE_EMULATOR_HOST`'s when set (as the library does).
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlencode

from mlplane.apis.request import Request
from mlplane.data.artifacts.model import crc32c_is_fast

GOOGLE = "https://storage.googleapis.com"
CHUNK = 100 * 1024 * 1024  # google-cloud-storage's default chunk size
SESSION_URI = "<the upload session URI the POST above returns>"


def storage_host() -> str:
    host = os.environ.get("STORAGE_EMULATOR_HOST", "").rstrip("/")
    if not host:
        return GOOGLE
    return host if "://" in host else f"http://{host}"


def _query(if_generation_match: int | None) -> str:
    return "" if if_generation_match is None else f"ifGenerationMatch={if_generation_match}"


def upload(
    bucket: str,
    name: str,
    *,
    content_type: str,
    if_generation_match: int | None,
    size: int | None,
    source: str,
    md5: str = "<its MD5>",
    crc32c: str = "<its CRC32C>",
) -> list[Request]:
    """The calls that write `size` bytes to gs://bucket/name; `source` says whence, e.g.
    "from model.json, md5 ..., crc32c ..." (never the bytes); `md5` and `crc32c` are the
    object's, base64 as GCS shows them."""
    check = ("X-Goog-Hash", f"crc32c={crc32c}" if crc32c_is_fast() else f"md5={md5}")
    query = urlencode([("uploadType", "resumable")])
    if if_generation_match is not None:
        query += "&" + _query(if_generation_match)
    url = f"{storage_host()}/upload/storage/v1/b/{quote(bucket, safe='')}/o?{query}"
    calls = [Request("POST", url, {"name": name}, (("X-Upload-Content-Type", content_type),))]
    if size is None:  # not known yet: one chunk shown (each 100 MiB is a PUT of its own)
        unknown = (("Content-Range", "bytes 0-<N-1>/<N>"), check)
        return [*calls, Request("PUT", SESSION_URI, headers=unknown, media=f"<N bytes {source}>")]
    start = 0
    while True:
        end = min(start + CHUNK, size)
        last = end - start < CHUNK
        if last and end == start:
            rng = f"bytes */{size}"
        elif last:
            rng = f"bytes {start}-{end - 1}/{size}"
        else:
            rng = f"bytes {start}-{end - 1}/*"
        if start == 0 and last:
            media = f"<{size} bytes {source}>"
        elif end > start:
            media = f"<bytes {start}-{end - 1} of the {size} bytes {source}>"
        else:
            media = "<no bytes: the total is now known>"
        headers = (("Content-Range", rng), check) if last else (("Content-Range", rng),)
        calls.append(Request("PUT", SESSION_URI, headers=headers, media=media))
        if last:
            return calls
        start = end


def delete(bucket: str, name: str, *, if_generation_match: int | None) -> Request:
    """The JSON API call (the library adds `prettyPrint=false` to those, not to uploads)."""
    query = "&".join(q for q in (_query(if_generation_match), "prettyPrint=false") if q)
    url = f"{storage_host()}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='~')}"
    return Request("DELETE", f"{url}?{query}")
