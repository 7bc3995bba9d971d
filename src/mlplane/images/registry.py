"""A small client of the Docker Registry HTTP API v2, as Artifact Registry serves it: resolve a
tag to its manifest digest with the caller's OAuth access token.

The token flow is Docker's: an anonymous request is answered 401 with `WWW-Authenticate:
Bearer realm=...,service=...,scope=...`; the client asks the realm for a registry token with
Basic `oauth2accesstoken:ACCESS_TOKEN` (what `docker login -u oauth2accesstoken` sends), then
retries with it. Locally the realm is the agent, which decides with the repository's IAM;
on Google it is `REGION-docker.pkg.dev/v2/token`.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
from urllib.parse import urlencode, urlsplit

from mlplane.errors import MlplaneError, PermissionDenied
from mlplane.model.images import ImageRef

ACCEPT = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)
_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(MlplaneError):
    """The registry could not answer (unreachable, or an unexpected status)."""


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    return name in ("127.0.0.1", "localhost", "[::1]")


def _request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    cls = http.client.HTTPConnection if parts.scheme == "http" else http.client.HTTPSConnection
    conn = cls(parts.netloc, timeout=30)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    except OSError as exc:
        raise RegistryError(f"registry {parts.netloc}: {exc}") from None
    finally:
        conn.close()


def _errors(body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors", [])
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace")[:300]


class RegistryClient:
    def __init__(self, host: str, access_token: str) -> None:
        self.host = host
        self.base = f"{'http' if _is_loopback(host) else 'https'}://{host}"
        self.access_token = access_token
        self._bearer: dict[str, str] = {}  # scope -> registry token

    def _token(self, challenge: str) -> str:
        params = dict(_PARAM.findall(challenge))
        realm = params.pop("realm", "")
        if not challenge.lower().startswith("bearer") or not realm:
            raise RegistryError(f"registry {self.host}: unexpected challenge '{challenge[:200]}'")
        basic = base64.b64encode(f"oauth2accesstoken:{self.access_token}".encode()).decode()
        status, _, body = _request(
            f"{realm}?{urlencode(params)}", headers={"Authorization": f"Basic {basic}"}
        )
        if status in (401, 403):
            raise PermissionDenied(_errors(body) or f"registry token refused ({status})")
        if status != 200:
            raise RegistryError(f"registry token endpoint: HTTP {status}: {_errors(body)}")
        data = json.loads(body)
        return str(data.get("token") or data.get("access_token"))

    def _call(self, method: str, path: str, scope: str) -> tuple[int, dict[str, str], bytes]:
        headers = {"Accept": ACCEPT}
        if scope in self._bearer:
            headers["Authorization"] = f"Bearer {self._bearer[scope]}"
        status, head, body = _request(self.base + path, method, headers)
        if status == 401 and "www-authenticate" in head:
            self._bearer[scope] = self._token(head["www-authenticate"])
            headers["Authorization"] = f"Bearer {self._bearer[scope]}"
            status, head, body = _request(self.base + path, method, headers)
        if status == 403 or (status == 401 and method == "HEAD"):
            raise PermissionDenied(_errors(body) or f"registry {self.host}: HTTP {status}")
        return status, head, body

    def digest(self, ref: ImageRef) -> str | None:
        """The manifest digest `ref`'s tag names now, or None when the tag does not exist."""
        scope = f"repository:{ref.path}:pull"
        status, head, body = self._call(
            "HEAD", f"/v2/{ref.path}/manifests/{ref.tag or 'latest'}", scope
        )
        if status == 404:
            return None
        if status != 200:
            raise RegistryError(f"{ref}: HTTP {status}: {_errors(body)}")
        digest = head.get("docker-content-digest", "")
        if not digest.startswith("sha256:"):
            raise RegistryError(f"{ref}: the registry sent no Docker-Content-Digest")
        return digest

    def tags(self, path: str) -> list[str]:
        status, _, body = self._call("GET", f"/v2/{path}/tags/list", f"repository:{path}:pull")
        if status == 404:
            return []
        if status != 200:
            raise RegistryError(f"{self.host}/{path}: HTTP {status}: {_errors(body)}")
        return sorted(json.loads(body).get("tags") or [])
