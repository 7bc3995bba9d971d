"""The local metadata server: what `metadata.google.internal` answers a GCE VM, per instance.

Each instance process gets its own listener on 127.0.0.1 (its port is the process's
GCE_METADATA_HOST), so the agent knows which instance asks by the socket the request arrived
on, and every client library that honours GCE_METADATA_HOST works unchanged
(docs/decisions/0300-local-metadata-identity.md). Tokens come from the agent's token authority
(`auth.tokens`) for the instance's service account; the agent's APIs authorize calls bearing
them as that account. A build's worker gets a metadata server of its own, for its trigger's
service account, for as long as the build runs. Only processes of the agent's OS user get an
answer (`auth.peer`).

This is an emulation for catching least-privilege mistakes before they reach the cloud, NOT an
OS security boundary: any local process of the same user can reach any of these ports or read
the agent's files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlplane.model.principals import Principal

from .auth.peer import same_user
from .auth.tokens import TokenAuthority
from .http_server import Request, Response, serve

FLAVOR = ("Metadata-Flavor", "Google")
PREFIX = "/computeMetadata/v1/"


def project_number(project_id: str) -> int:
    """A stable 12-digit stand-in for the project number (the local agent has no real one)."""
    digest = int(hashlib.sha256(project_id.encode()).hexdigest(), 16)
    return 100_000_000_000 + digest % 900_000_000_000


@dataclass(frozen=True)
class InstanceIdentity:
    name: str
    zone: str
    project_id: str
    service_account: str | None
    attributes: Mapping[str, str] = field(default_factory=dict)
    numeric_id: int = field(default_factory=lambda: secrets.randbelow(10**18) + 10**18)
    origin: str = "instance"  # or "build": a build's worker gets a metadata server too


class MetadataServer:
    """The metadata endpoint of one instance."""

    def __init__(self, identity: InstanceIdentity, tokens: TokenAuthority) -> None:
        self.identity = identity
        self.tokens = tokens
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        self._server = await serve(self.handle)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        self.tokens.revoke(self.identity.origin, self.identity.name)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def handle(self, req: Request) -> Response:
        if req.peer is None or not same_user(req.peer[1], self.port):
            return Response.text(
                403, "the metadata server answers processes of the agent's OS user only",
                headers=(FLAVOR,),
            )  # fmt: skip
        if req.headers.get("metadata-flavor") != "Google" or "x-forwarded-for" in req.headers:
            return Response.text(
                403,
                "Missing required header 'Metadata-Flavor': 'Google' (or the request came "
                "through a proxy)",
                headers=(FLAVOR,),
            )
        if req.method != "GET":
            return Response.text(405, "the metadata server answers GET only", headers=(FLAVOR,))
        if req.path in ("/", "/computeMetadata/", PREFIX):
            return _text("instance/\nproject/\n")
        if not req.path.startswith(PREFIX):
            return _not_found()
        return self._answer(req.path[len(PREFIX) :].rstrip("/") + ("/" * req.path.endswith("/")))

    def _answer(self, path: str) -> Response:
        ident = self.identity
        project = {
            "project/project-id": ident.project_id,
            "project/numeric-project-id": str(project_number(ident.project_id)),
        }
        instance = {
            "instance/name": ident.name,
            "instance/id": str(ident.numeric_id),
            "instance/zone": f"projects/{project_number(ident.project_id)}/zones/{ident.zone}",
            "instance/hostname": f"{ident.name}.{ident.zone}.c.{ident.project_id}.internal",
            "instance/attributes/": "".join(f"{k}\n" for k in sorted(ident.attributes)),
        }
        if path in project:
            return _text(project[path])
        if path in instance:
            return _text(instance[path])
        if path.startswith("instance/attributes/"):
            value = ident.attributes.get(path.removeprefix("instance/attributes/"))
            return _not_found() if value is None else _text(value)
        if path.startswith("instance/service-accounts"):
            return self._service_accounts(path.removeprefix("instance/service-accounts"))
        return _not_found()

    def _service_accounts(self, rest: str) -> Response:
        email = self.identity.service_account
        if email is None:
            return _not_found()
        if rest in ("", "/"):
            return _text(f"default/\n{email}/\n")
        account, _, item = rest.lstrip("/").partition("/")
        if account not in ("default", email):
            return _not_found()
        if item == "email":
            return _text(email)
        if item == "scopes":
            return _text("https://www.googleapis.com/auth/cloud-platform\n")
        if item == "aliases":
            return _text("default\n")
        if item == "token":
            tok = self.tokens.current(
                Principal("serviceAccount", email), self.identity.origin, self.identity.name
            )
            body = {
                "access_token": tok.value,
                "expires_in": max(int(tok.token.expires_at - self.tokens.clock()), 0),
                "token_type": "Bearer",
            }
            return Response.json(200, body, headers=(FLAVOR,))
        if item in ("", "/"):
            return _text("aliases\nemail\nscopes\ntoken\n")
        return _not_found()


def _text(value: str) -> Response:
    return Response(200, value.encode(), "application/text", headers=(FLAVOR,))


def _not_found() -> Response:
    return Response(404, json.dumps({"error": "not found"}).encode(), headers=(FLAVOR,))
