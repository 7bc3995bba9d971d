"""The local Artifact Registry: a real OCI registry (Debian's docker-registry) behind the agent's
tokens, as Artifact Registry is. Docker's token flow (401 with a realm on the agent, Basic
`oauth2accesstoken:ACCESS_TOKEN`, a registry token), the repository's IAM on pull and push,
and the registry itself refusing what the agent did not grant. No Docker engine is needed: the
pushes here speak the registry's HTTP API directly."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from mlplane.errors import PermissionDenied
from mlplane.images.registry import RegistryClient
from mlplane.model.images import ImageRef
from tests.cicd.conftest import ALICE, CicdProject
from tests.harness import ADMIN

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _http(
    host: str, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def registry_token(cp: CicdProject, access_token: str | None, scope: str) -> tuple[int, Any]:
    """Ask the realm the registry names for a token, as Docker does."""
    status, head, _ = _http(cp.registry, "GET", "/v2/")
    assert status == 401
    challenge = head["www-authenticate"]
    assert challenge.startswith("Bearer realm=")
    realm = challenge.split('realm="', 1)[1].split('"', 1)[0]
    parts = urlsplit(realm)
    headers = {}
    if access_token is not None:
        basic = base64.b64encode(f"oauth2accesstoken:{access_token}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    query = urlencode({"service": "mlplane-registry", "scope": scope})
    status, _, body = _http(parts.netloc, "GET", f"{parts.path}?{query}", headers)
    return status, json.loads(body)


def push_image(cp: CicdProject, jwt: str, path: str, tag: str, payload: bytes) -> str:
    """Upload a config and a layer blob and a manifest; its digest."""
    auth = {"Authorization": f"Bearer {jwt}"}

    def blob(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, head, body = _http(cp.registry, "POST", f"/v2/{path}/blobs/uploads/", auth)
        assert status == 202, body
        location = urlsplit(head["location"])
        query = (location.query + "&" if location.query else "") + urlencode({"digest": digest})
        status, _, body = _http(
            cp.registry,
            "PUT",
            f"{location.path}?{query}",
            {**auth, "Content-Type": "application/octet-stream"},
            data,
        )
        assert status == 201, body
        return digest

    layer = payload
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": blob(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": blob(layer),
                }
            ],
        }
    ).encode()
    status, head, body = _http(
        cp.registry,
        "PUT",
        f"/v2/{path}/manifests/{tag}",
        {**auth, "Content-Type": MANIFEST},
        manifest,
    )
    assert status == 201, body
    return head["docker-content-digest"]


def test_cicd_pushes_and_anyone_allowed_pulls_by_digest(no_engine_project: CicdProject) -> None:
    cp = no_engine_project
    assert cp.registry.startswith("127.0.0.1:")
    cicd = cp.team.token_file("cicd").read_text()
    path = "acme-ml/mlplane/probe"
    status, got = registry_token(cp, cicd, f"repository:{path}:push,pull")
    assert status == 200
    digest = push_image(cp, got["token"], path, "v1", b"layer one")
    ref = ImageRef.parse(f"{cp.registry}/{path}:v1")
    assert RegistryClient(cp.registry, cicd).digest(ref) == digest
    # a team member may pull (training's images are Artifact Registry artifacts they read)
    alice = cp.team.api(ALICE).credentials.token()
    assert RegistryClient(cp.registry, alice).digest(ref) == digest
    assert RegistryClient(cp.registry, alice).digest(ref.with_tag("missing")) is None
    assert "v1" in RegistryClient(cp.registry, alice).tags(path)


def test_a_users_push_is_refused_naming_the_permission(no_engine_project: CicdProject) -> None:
    cp = no_engine_project
    alice = cp.team.api(ALICE).credentials.token()
    status, got = registry_token(cp, alice, "repository:acme-ml/mlplane/probe:push,pull")
    assert status == 403
    message = got["errors"][0]["message"]
    assert got["errors"][0]["code"] == "DENIED"
    assert 'Permission "artifactregistry.repositories.uploadArtifacts" denied' in message
    assert "projects/acme-ml/locations/us-central1/repositories/mlplane" in message
    assert "CI trigger" in message


def test_credentials_are_access_tokens_the_agent_issued(no_engine_project: CicdProject) -> None:
    cp = no_engine_project
    for token in (None, "ya29.not-issued-here"):
        status, got = registry_token(cp, token, "repository:acme-ml/mlplane/probe:pull")
        assert status == 401 and got["errors"][0]["code"] == "UNAUTHORIZED"
    admin = cp.team.api(ADMIN).credentials.token()
    status, got = registry_token(cp, admin, "repository:other-project/mlplane/x:pull")
    assert status == 403 and "not a repository of project acme-ml" in got["errors"][0]["message"]


def test_the_registry_enforces_the_scope_the_agent_granted(no_engine_project: CicdProject) -> None:
    cp = no_engine_project
    alice = cp.team.api(ALICE).credentials.token()
    status, got = registry_token(cp, alice, "repository:acme-ml/mlplane/probe:pull")
    assert status == 200
    with pytest.raises(AssertionError):  # a pull token cannot start an upload
        push_image(cp, got["token"], "acme-ml/mlplane/probe", "v2", b"sneaky")
    forged = got["token"].rsplit(".", 1)[0] + ".AAAA"
    status, _, _ = _http(
        cp.registry,
        "GET",
        "/v2/acme-ml/mlplane/probe/tags/list",
        {"Authorization": f"Bearer {forged}"},
    )
    assert status == 401


def test_a_refused_pull_raises_with_the_reason(no_engine_project: CicdProject) -> None:
    cp = no_engine_project
    # the aux runtime may pull, but nothing outside the project's repositories
    client = RegistryClient(cp.registry, cp.team.token_file("aux-runtime").read_text())
    with pytest.raises(PermissionDenied, match="not a repository of project acme-ml"):
        client.digest(ImageRef.parse(f"{cp.registry}/acme-ml/elsewhere/x:1"))


def test_the_registry_keeps_its_port_and_blobs_across_agent_restarts(
    no_engine_project: CicdProject,
) -> None:
    cp = no_engine_project
    before = cp.registry
    cicd = cp.team.token_file("cicd").read_text()
    ref = ImageRef.parse(f"{before}/acme-ml/mlplane/probe:v1")
    digest = RegistryClient(before, cicd).digest(ref)
    assert digest
    cp.team.down()
    assert cp.registry == ""  # the registry stops with the agent
    cp.team.up()
    assert cp.registry == before
    assert RegistryClient(before, cp.team.api(ALICE).credentials.token()).digest(ref) == digest
