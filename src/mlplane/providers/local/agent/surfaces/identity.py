"""Where tokens come from, as Google's token endpoints and IAM Credentials give them:

POST /oauth2/token          a signed-in user's refresh token -> an access token
GET  /oauth2/tokeninfo      who an access token belongs to (public, as Google's is)
POST iamcredentials v1 projects/-/serviceAccounts/SA:generateAccessToken
                            a token of SA, if IAM allows the caller getAccessToken on it
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qsl

from mlplane.apis import signin
from mlplane.apis.discovery import load
from mlplane.apis.errors import ApiError, bad_request
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

from ..auth import Gate
from ..gateway import Call, Surface
from ..http_server import Request, Response

IAMCREDENTIALS = load("iamcredentials")
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
MAX_LIFETIME = 3600


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return Response.json(status, {"error": error, "error_description": description})


class IdentityApi:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def plain(self) -> dict[tuple[str, str], Any]:
        return {("POST", "/oauth2/token"): self.token, ("GET", "/oauth2/tokeninfo"): self.tokeninfo}

    def surface(self) -> Surface:
        return Surface(
            IAMCREDENTIALS,
            "/iamcredentials/",
            {"iamcredentials.projects.serviceAccounts.generateAccessToken": self.generate},
        )

    # -- sign-in -------------------------------------------------------------------------------

    def is_team_user(self, email: str) -> bool:
        authz = self.gate.authorizer
        members = set(authz.members_of(Principal("user", email)))
        team = {m for ms in authz.policy.process_members.values() for m in ms}
        return bool(members & (team | set(authz.policy.admins)))

    async def token(self, req: Request) -> Response:
        if req.headers.get("content-type", "").startswith("application/json"):
            try:
                form = {str(k): str(v) for k, v in (json.loads(req.body or b"{}")).items()}
            except (ValueError, AttributeError):
                return _oauth_error("invalid_request", "body is not a JSON object")
        else:
            form = dict(parse_qsl(req.body.decode("latin-1")))
        if form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
            return _oauth_error(
                "unsupported_grant_type",
                "the local token endpoint takes grant_type=refresh_token (sign in first)",
            )
        refresh = form["refresh_token"]
        digest = signin.token_hash(refresh)
        account = form.get("account") or next(
            (a for a in signin.signed_in_accounts() if digest in signin.issued_hashes(a)), None
        )
        if account is None or digest not in signin.issued_hashes(account):
            return _oauth_error("invalid_grant", "Token has been expired or revoked.")
        if not self.is_team_user(account):
            return _oauth_error(
                "invalid_grant",
                f"{account} is not a member of project {self.gate.project}'s team "
                f"({self.gate.project_file})",
            )
        issued = self.gate.tokens.current(Principal("user", account), "signin", account)
        return Response.json(
            200,
            {
                "access_token": issued.value,
                "expires_in": int(issued.token.expires_at - time.time()),
                "token_type": "Bearer",
                "scope": SCOPE,
            },
        )

    async def tokeninfo(self, req: Request) -> Response:
        value = req.query.get("access_token", "")
        token = self.gate.tokens.lookup(value) if value else None
        if token is None:
            return _oauth_error("invalid_token", "Invalid Value")
        expires = int(token.expires_at - time.time())
        return Response.json(
            200,
            {
                "email": token.principal.email,
                "email_verified": "true",
                "expires_in": str(expires),
                "exp": str(int(token.expires_at)),
                "scope": SCOPE,
                "access_type": "online",
                # mlplane's own: where the token came from (signin, instance, build,
                # impersonation) and of what (the instance name, build id, ...).
                "mlplane_principal": str(token.principal),
                "mlplane_origin": token.origin,
                "mlplane_detail": token.detail,
            },
        )

    # -- impersonation -------------------------------------------------------------------------

    async def generate(self, call: Call) -> object:
        name = call.param("name") or (
            f"projects/{call.param('projectsId')}/serviceAccounts/{call.param('serviceAccountsId')}"
        )
        email = name.rsplit("/", 1)[-1]
        policy = self.gate.authorizer.policy
        if email not in policy.identities.values():
            raise ApiError(404, f"Not found; Gaia id not found for email {email}", "notFound")
        ref = ResourceRef("serviceAccount", email, self.gate.project)
        self.gate.require(call.caller, ("iam.serviceAccounts.getAccessToken",), ref)
        lifetime = _seconds(str((call.body or {}).get("lifetime") or f"{MAX_LIFETIME}s"))
        issued = self.gate.tokens.issue(
            Principal("serviceAccount", email),
            "impersonation",
            call.caller.principal.email,
            lifetime,
        )
        expire = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issued.token.expires_at))
        return {"accessToken": issued.value, "expireTime": expire}


def _seconds(text: str) -> float:
    try:
        value = float(text.removesuffix("s"))
    except ValueError:
        raise bad_request(
            f"Invalid value at 'lifetime' (TYPE_DURATION), \"{text}\": write seconds, e.g. 3600s"
        ) from None
    if not 0 < value <= MAX_LIFETIME:
        raise bad_request(f"lifetime must be between 1s and {MAX_LIFETIME}s")
    return value
