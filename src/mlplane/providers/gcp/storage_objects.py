"""Cloud Storage objects for the team state: the JSON API over stdlib HTTP, with the caller's
credentials (the same ones every other call carries: signed-in user, ADC, a build's metadata
server, an impersonated token).

Four calls, each with a generation precondition where it writes (docs/decisions/1501):

    objects.get     GET    /storage/v1/b/B/o/NAME                      metadata
    objects.get     GET    /storage/v1/b/B/o/NAME?alt=media&ifGenerationMatch=G
    objects.insert  POST   /upload/storage/v1/b/B/o?uploadType=media&name=NAME&ifGenerationMatch=G
    objects.delete  DELETE /storage/v1/b/B/o/NAME?ifGenerationMatch=G

Not google-cloud-storage: it adds requests and its own credentials on top of google-auth, and
the calls are these four. The endpoint is Google's, or what `CLOUDSDK_API_ENDPOINT_OVERRIDES_
STORAGE` (gcloud's variable) or `STORAGE_EMULATOR_HOST` (Google's client libraries') names.
Errors are mapped here: 412 (and 404 on a conditional delete) -> GenerationMismatch, 403 ->
PermissionDenied naming the derived actions that grant access, 429/5xx/no answer ->
ProviderUnavailable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from mlplane.apis.credentials import CredentialError, Credentials, NotSignedIn
from mlplane.apis.transport import Transport, TransportError
from mlplane.errors import PermanentError, PermissionDenied
from mlplane.providers.errors import NotFound, ProviderUnavailable
from mlplane.providers.objects import GenerationMismatch, StoredObject

GOOGLE = "https://storage.googleapis.com"
OVERRIDE = "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE"
EMULATOR = "STORAGE_EMULATOR_HOST"
ACCESS_HINT = (
    "the team state's readers and writers hold it through the derived actions "
    "PROCESS.read-state / PROCESS.write-state on the [state] bucket (`mlplane iam plan`)"
)


def storage_base(env: Mapping[str, str] | None = None) -> str:
    """scheme://host[:port] of the Cloud Storage JSON API."""
    env = os.environ if env is None else env
    override = env.get(OVERRIDE, "")
    if override:
        parts = urlsplit(override)
        return f"{parts.scheme}://{parts.netloc}"
    emulator = env.get(EMULATOR, "")
    if emulator:
        return emulator.rstrip("/") if "://" in emulator else f"http://{emulator.rstrip('/')}"
    return GOOGLE


class CloudStorageObjects:
    """One bucket's objects (the ObjectStore protocol of providers/objects.py)."""

    def __init__(
        self,
        bucket: str,
        credentials: Credentials,
        base: str | None = None,
        timeout: float = 60.0,
        transport: Transport | None = None,
    ) -> None:
        self.bucket = bucket
        self.credentials = credentials
        self.base = (base or storage_base()).rstrip("/")
        self.timeout = timeout
        self.transport = transport or Transport(timeout)  # the client's own, where there is one

    def uri(self, name: str) -> str:
        return f"gs://{self.bucket}/{name}"

    # -- the protocol ---------------------------------------------------------------------------

    def stat(self, name: str) -> StoredObject | None:
        status, body = self._call("GET", self._object_url(name), name)
        if status == 404:
            return None
        self._check(status, body, name)
        return self._stored(name, body)

    def read(self, name: str, generation: int) -> bytes:
        url = self._object_url(name, alt="media", ifGenerationMatch=generation)
        status, body = self._call("GET", url, name)
        if status in (404, 412):
            raise GenerationMismatch(self.uri(name), generation)
        self._check(status, body, name)
        if not isinstance(body, bytes):
            raise PermanentError(f"{self.uri(name)}: Cloud Storage answered without the object")
        return body

    def write(
        self, name: str, data: bytes, *, if_generation_match: int, content_type: str
    ) -> StoredObject:
        query = {"uploadType": "media", "name": name, "ifGenerationMatch": if_generation_match}
        url = f"{self.base}/upload/storage/v1/b/{quote(self.bucket, safe='')}/o?{urlencode(query)}"
        try:
            status, body = self._call("POST", url, name, data, content_type)
        except ProviderUnavailable:
            # The upload may have landed before the answer was lost: ours if the live object
            # has our bytes and a new generation; else it had no effect, and the caller retries.
            live = self.stat(name)
            ours = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
            if (
                live is not None
                and live.generation != if_generation_match
                and live.md5_hash == ours
            ):
                return live
            raise
        if status == 412:
            raise GenerationMismatch(self.uri(name), if_generation_match)
        self._check(status, body, name)
        return self._stored(name, body)

    def delete(self, name: str, *, if_generation_match: int) -> None:
        status, body = self._call(
            "DELETE", self._object_url(name, ifGenerationMatch=if_generation_match), name
        )
        if status in (404, 412):
            raise GenerationMismatch(self.uri(name), if_generation_match)
        self._check(status, body, name)

    # -- HTTP -----------------------------------------------------------------------------------

    def _object_url(self, name: str, **query: Any) -> str:
        path = f"/storage/v1/b/{quote(self.bucket, safe='')}/o/{quote(name, safe='')}"
        return f"{self.base}{path}" + (f"?{urlencode(query)}" if query else "")

    def _call(
        self,
        method: str,
        url: str,
        name: str,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> tuple[int, Any]:
        """One request (again once with a fresh token after a 401); the status and the body:
        bytes for media downloads that succeeded, else decoded JSON (or None)."""
        status, raw, media = self._send(method, url, body, content_type)
        if status == 401:
            self.credentials.invalidate()
            status, raw, media = self._send(method, url, body, content_type)
        if status == 401:
            raise PermissionDenied(
                f"{self.uri(name)}: Cloud Storage refused the credentials "
                f"({self.credentials.describe()})"
            )
        if media and status < 300:
            return status, raw
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def _send(
        self, method: str, url: str, body: bytes | None, content_type: str | None
    ) -> tuple[int, bytes, bool]:
        try:
            token = self.credentials.token()
        except (NotSignedIn, CredentialError) as exc:
            raise PermissionDenied(str(exc)) from None
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/octet-stream"
        try:
            resp = self.transport.request(method, url, body, headers, self.timeout)
        except TransportError as exc:
            raise ProviderUnavailable(
                f"{method} {url} got no answer ({exc.cause})", delay=2.0
            ) from None
        raw = resp.raw or (b"" if resp.body is None else _encode(resp.body))
        return resp.status, raw, "alt=media" in urlsplit(url).query

    def _check(self, status: int, body: Any, name: str) -> None:
        if status < 300:
            return
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = str(error.get("message") or body or f"HTTP {status}")[:300]
        uri = self.uri(name)
        if status == 403:
            raise PermissionDenied(
                f"{uri}: Cloud Storage denied the call: {message}; {ACCESS_HINT}"
            )
        if status == 404:
            raise NotFound(f"{uri}: {message}")
        if status == 429 or status >= 500:
            raise ProviderUnavailable(f"{uri}: Cloud Storage: {message}", delay=2.0)
        raise PermanentError(f"{uri}: Cloud Storage answered {status}: {message}")

    def _stored(self, name: str, body: Any) -> StoredObject:
        if not isinstance(body, dict) or "generation" not in body:
            raise PermanentError(f"{self.uri(name)}: Cloud Storage answered without a generation")
        return StoredObject(
            uri=self.uri(name),
            generation=int(body["generation"]),
            size=int(body.get("size") or 0),
            md5_hash=str(body.get("md5Hash") or ""),
            updated=str(body.get("updated") or ""),
        )


def _encode(body: Any) -> bytes:
    """A decoded body back to bytes (transports that answer with decoded bodies only)."""
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()
