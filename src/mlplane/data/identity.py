"""Who is acting, for the data SDK: whoever the caller's token belongs to, found as Google's
libraries find credentials (a credentials file, else the metadata server of the instance or
build the code runs in, else the signed-in user), and named by the token authority itself
(`tokeninfo`): locally the project's agent, on Google Cloud Google's.

An explicit `principal` is for embedding and tests only: mlplane's commands never pass one, and
no flag or environment variable names one. Locally this is an emulation for catching
least-privilege mistakes before they reach the cloud, not an operating-system security
boundary: any local process of the same user can read the state directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from mlplane.apis.credentials import (
    CredentialError,
    Credentials,
    NotSignedIn,
    default_credentials,
    tokeninfo,
)
from mlplane.apis.endpoints import Endpoints
from mlplane.apis.transport import Transport
from mlplane.errors import ConfigError, PermanentError, PermissionDenied
from mlplane.iam.authorizer import Authorizer
from mlplane.iam.compiled import policy_for
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

AGENT_INFO = Path(".mlplane") / "agent" / "agent.json"  # as providers.local.paths writes it


class NoIdentity(PermanentError):
    """No credentials, or the token authority would not say whose they are."""

    exit_code = 3


def find_project_file() -> Path:
    from mlplane.project_path import find_project_file as find

    return Path(find())


def agent_endpoints(project_file: Path) -> Endpoints | None:
    """The project's local agent, if one has published where it listens."""
    try:
        info = json.loads((project_file.resolve().parent / AGENT_INFO).read_text())
        return Endpoints.agent(f"http://127.0.0.1:{int(info['port'])}")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _google_credentials() -> object:
    # By name, as the data SDK's cloud backends are loaded (decision 0009): google-auth stays
    # out of the static import graph of everything that resolves an identity.
    import importlib

    module = importlib.import_module("mlplane.data.adc.gcp_credentials")
    return module.application_default()


_CREDENTIALS: dict[str, tuple[Endpoints, Credentials, Transport]] = {}
_IDENTITIES: dict[str, tuple[Principal, str, str, float]] = {}  # sha256(token) -> ..., expiry


def _credentials(project_file: Path) -> tuple[Endpoints, Credentials, Transport]:
    """The caller's credentials (kept per process and setting: they cache their token)."""
    key = json.dumps([str(project_file.resolve()), sorted(_env_key().items())])
    found = _CREDENTIALS.get(key)
    if found is None:
        endpoints = Endpoints.from_environment(os.environ) or agent_endpoints(project_file)
        if endpoints is None:
            if _provider(project_file) == "local":
                raise NoIdentity(
                    f"no local agent is running for {project_file}: start it with `mlplane up` "
                    "(locally, the agent is the token authority that says whose credentials "
                    "these are)"
                )
            endpoints = Endpoints.google()
        transport = Transport(timeout=10.0)
        try:
            creds = default_credentials(endpoints, transport, google=_google_credentials)  # type: ignore[arg-type]
        except (NotSignedIn, CredentialError) as exc:
            raise NoIdentity(str(exc)) from None
        found = _CREDENTIALS[key] = (endpoints, creds, transport)
    return found


def token_identity(project_file: Path) -> tuple[Principal, str, str]:
    """(principal, origin, detail) of the caller's current token, as the token authority says
    (remembered per token until the token expires)."""
    endpoints, creds, transport = _credentials(project_file)
    try:
        token = creds.token()
        digest = hashlib.sha256(token.encode()).hexdigest()
        known = _IDENTITIES.get(digest)
        if known is not None and known[3] > time.time():
            return known[0], known[1], known[2]
        info = tokeninfo(endpoints, transport, token)
    except (NotSignedIn, CredentialError) as exc:
        raise NoIdentity(str(exc)) from None
    member = info.get("mlplane_principal")
    if member:
        principal = Principal.parse(member)
    elif info.get("email"):
        email = info["email"]
        kind = "serviceAccount" if email.endswith(".gserviceaccount.com") else "user"
        principal = Principal(kind, email)
    else:
        raise NoIdentity(f"{endpoints.tokeninfo_uri} does not say whose token this is")
    try:
        expires = float(info.get("exp") or 0.0)
    except ValueError:
        expires = 0.0
    expires = min(expires, time.time() + 300.0) if expires else time.time() + 60.0
    origin, detail = info.get("mlplane_origin", ""), info.get("mlplane_detail", "")
    _IDENTITIES[digest] = (principal, origin, detail, expires)
    return principal, origin, detail


def forget() -> None:
    """Forget remembered credentials and identities (a process that switches accounts)."""
    _CREDENTIALS.clear()
    _IDENTITIES.clear()


def _provider(project_file: Path) -> str:
    import tomllib

    try:
        with open(project_file, "rb") as f:
            return str(tomllib.load(f).get("project", {}).get("provider", "local"))
    except (OSError, ValueError):
        return "local"


@dataclass
class Caller:
    """The acting principal and the authorizer that decides for it."""

    principal: Principal
    authz: Authorizer
    project_file: Path
    origin: str = ""  # where its token came from: signin, instance, build, impersonation
    detail: str = ""  # of what: the instance name, the build id, ...

    @classmethod
    def resolve(
        cls, project_file: Path | str | None = None, principal: Principal | str | None = None
    ) -> Caller:
        path = Path(project_file) if project_file else find_project_file()
        authz = Authorizer(policy_for(path))
        if principal is not None:  # embedding and tests only (see the module docstring)
            if isinstance(principal, str):
                principal = authz.principal(principal)
            return cls(principal, authz, path)
        principal, origin, detail = token_identity(path)
        return cls(principal, authz, path, origin, detail)

    @property
    def project(self) -> str:
        return self.authz.policy.project

    def require(self, permissions: str | tuple[str, ...], resource: ResourceRef) -> None:
        """Raise PermissionDenied (naming what is missing and the sanctioned path) unless the
        caller holds `permissions` on `resource`."""
        decision = self.authz.authorize(self.principal, permissions, resource)
        if not decision.allowed:
            raise PermissionDenied(decision.explain(), decision)


def _env_key() -> dict[str, str]:
    """What decides the identity: the credential variables and the active signed-in account."""
    from mlplane.apis.signin import active_account

    names = (
        "GCE_METADATA_HOST",
        "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "MLPLANE_CONFIG_DIR",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE",
    )
    key = {n: os.environ.get(n, "") for n in names}
    key["active"] = active_account() or ""
    return key


def dumps(data: object) -> str:
    return json.dumps(data, sort_keys=True)


__all__ = ["Caller", "ConfigError", "NoIdentity", "dumps", "forget", "token_identity"]
