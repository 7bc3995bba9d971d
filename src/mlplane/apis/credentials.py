"""Where the client's identity comes from, in the order Google's libraries look:

1. a credentials file: `CLOUDSDK_AUTH_ACCESS_TOKEN_FILE` (an access token, as gcloud reads it),
   or `GOOGLE_APPLICATION_CREDENTIALS` naming a signed-in user's credential;
2. the metadata server of the instance (or build) the process runs in (`GCE_METADATA_HOST`);
3. the signed-in user (`mlplane auth login`), whose refresh token is exchanged at the token
   endpoint (the local agent's, or Google's).

On Google Cloud (`provider = "gcp"`), Application Default Credentials come from google-auth,
through the `google` factory the gcp provider passes in (this package imports no cloud SDK).
`--impersonate-service-account` wraps any of these with IAM Credentials' `generateAccessToken`,
which IAM allows or refuses as Google does.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from . import signin, token_cache
from .endpoints import Endpoints
from .errors import ApiError
from .transport import Transport, TransportError

EARLY = 60.0  # refresh this long before expiry


class NotSignedIn(Exception):
    """No credentials to act with (the CLI maps it to mlplane's errors, exit 3)."""


class CredentialError(Exception):
    """The token endpoint or metadata server refused or failed."""


class ImpersonationRefused(Exception):
    """IAM refused `generateAccessToken` (403): the message is the API's."""


class Credentials(Protocol):
    def token(self) -> str:
        """A current access token (refreshed when needed)."""

    def invalidate(self) -> None:
        """Forget the cached token (after a 401): the next `token()` gets a new one."""

    def describe(self) -> str:
        """Where the identity comes from, for messages."""


class _Cached:
    def __init__(self) -> None:
        self._value: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._value is None or time.time() > self._expires - EARLY:
                self._value, lifetime = self._fetch()
                self._expires = time.time() + lifetime
            return self._value

    def invalidate(self) -> None:
        with self._lock:
            self._value = None

    def _fetch(self) -> tuple[str, float]:
        raise NotImplementedError


@dataclass
class StaticToken:
    """An access token handed over as is (a token file, an impersonated token)."""

    value: str
    source: str

    def token(self) -> str:
        return self.value

    def invalidate(self) -> None:
        pass

    def describe(self) -> str:
        return self.source


class UserCredentials(_Cached):
    """A signed-in user: the refresh token exchanged at the token endpoint."""

    def __init__(
        self,
        credential: signin.UserCredential,
        token_uri: str,
        transport: Transport,
        source: str | None = None,
    ) -> None:
        super().__init__()
        self.credential = credential
        self.token_uri = token_uri
        self.transport = transport
        self.source = source  # the credential's file: its tokens are cached (apis.token_cache)

    def invalidate(self) -> None:
        super().invalidate()
        if self.source:
            token_cache.forget(self.token_uri, self.source)

    def describe(self) -> str:
        return f"user:{self.credential.account} (signed in)"

    def _fetch(self) -> tuple[str, float]:
        if self.source:
            cached = token_cache.lookup(self.token_uri, self.source)
            if cached:
                return cached, token_cache.EARLY  # re-read from the cache when it is due
        token, lifetime = self._exchange()
        if self.source:
            token_cache.remember(self.token_uri, self.source, token, time.time() + lifetime)
        return token, lifetime

    def _exchange(self) -> tuple[str, float]:
        form = urllib.parse.urlencode(
            {"grant_type": "refresh_token", "refresh_token": self.credential.refresh_token}
        ).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        try:
            resp = self.transport.request("POST", self.token_uri, form, headers)
        except TransportError as exc:
            raise CredentialError(
                f"the token endpoint {self.token_uri} does not answer ({exc.cause}); "
                "locally, start the agent with `mlplane up`"
            ) from None
        body = resp.body if isinstance(resp.body, dict) else {}
        if resp.status != 200 or "access_token" not in body:
            err = ApiError.from_json(resp.status, resp.body)
            raise CredentialError(
                f"cannot get a token for {self.credential.account}: {err.message} "
                "(sign in again with `mlplane auth login`)"
            )
        return str(body["access_token"]), float(body.get("expires_in", 3600))


class MetadataCredentials(_Cached):
    """The instance's (or build's) service account, from its metadata server."""

    def __init__(self, host: str, transport: Transport) -> None:
        super().__init__()
        self.host = host
        self.transport = transport
        self.email = ""

    def describe(self) -> str:
        return f"serviceAccount:{self.email or '?'} (metadata server {self.host})"

    def _get(self, path: str) -> str:
        url = f"http://{self.host}/computeMetadata/v1/{path}"
        try:
            resp = self.transport.request("GET", url, headers={"Metadata-Flavor": "Google"})
        except TransportError as exc:
            raise CredentialError(
                f"the metadata server {self.host} does not answer: {exc}"
            ) from None
        if resp.status != 200:
            raise CredentialError(
                f"the metadata server {self.host} answered {resp.status} for {path}"
            )
        return resp.body if isinstance(resp.body, str) else json.dumps(resp.body)

    def _fetch(self) -> tuple[str, float]:
        if not self.email:
            self.email = self._get("instance/service-accounts/default/email").strip()
        body = json.loads(self._get("instance/service-accounts/default/token"))
        return str(body["access_token"]), float(body.get("expires_in", 3600))


def _token_file(path: str) -> StaticToken:
    try:
        with open(path) as f:
            value = f.read().strip()
    except OSError as exc:
        raise NotSignedIn(f"CLOUDSDK_AUTH_ACCESS_TOKEN_FILE={path}: {exc.strerror}") from None
    if not value:
        raise NotSignedIn(f"CLOUDSDK_AUTH_ACCESS_TOKEN_FILE={path} is empty")
    return StaticToken(value, f"the access token in {path}")


def signed_in_user(endpoints: Endpoints, transport: Transport) -> UserCredentials:
    account = signin.active_account()
    credential = signin.read_credential(account) if account else None
    if credential is None:
        accounts = signin.signed_in_accounts()
        hint = (
            f" (signed in: {', '.join(accounts)}; `mlplane auth login EMAIL`)" if accounts else ""
        )
        raise NotSignedIn(f"you are not signed in: run `mlplane auth login`{hint}")
    return UserCredentials(
        credential, endpoints.token_uri, transport, str(signin.credential_path(credential.account))
    )


def default_credentials(
    endpoints: Endpoints,
    transport: Transport,
    env: dict[str, str] | None = None,
    google: Callable[[], Credentials] | None = None,
) -> Credentials:
    """The caller's identity, found as Google's libraries find it (see the module docstring).
    `google` makes Application Default Credentials for Google's own endpoints."""
    env = dict(os.environ) if env is None else env
    token_file = env.get("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE")
    if token_file:
        return _token_file(token_file)
    key_file = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file and not endpoints.is_google:
        try:
            with open(key_file) as f:
                text = f.read()
        except OSError as exc:
            raise NotSignedIn(
                f"GOOGLE_APPLICATION_CREDENTIALS={key_file}: {exc.strerror}"
            ) from None
        if f'"{signin.CREDENTIAL_TYPE}"' in text:  # else a Google key, for Google's libraries
            try:
                credential = signin.UserCredential.from_json(text, key_file)
            except ValueError as exc:
                raise NotSignedIn(str(exc)) from None
            return UserCredentials(credential, endpoints.token_uri, transport, key_file)
    if endpoints.is_google:
        if google is None:
            raise NotSignedIn("Google's endpoints need Application Default Credentials")
        return google()
    metadata = env.get("GCE_METADATA_HOST")
    if metadata:
        return MetadataCredentials(metadata, transport)
    return signed_in_user(endpoints, transport)


def impersonated(
    source: Credentials, account: str, endpoints: Endpoints, transport: Transport
) -> StaticToken:
    """A token of `account`, if IAM allows the source's principal `getAccessToken` on it."""
    from .discovery import method

    url = method("iamcredentials.projects.serviceAccounts.generateAccessToken").url(
        endpoints.root("iamcredentials"), {"name": f"projects/-/serviceAccounts/{account}"}
    )
    body = {"scope": ["https://www.googleapis.com/auth/cloud-platform"], "lifetime": "3600s"}
    resp = transport.json("POST", url, body, {"Authorization": f"Bearer {source.token()}"})
    if resp.status != 200 or not isinstance(resp.body, dict):
        err = ApiError.from_json(resp.status, resp.body)
        if resp.status == 403:
            raise ImpersonationRefused(f"impersonating {account} refused: {err.message}")
        raise CredentialError(f"impersonating {account} failed: HTTP {resp.status}: {err.message}")
    return StaticToken(str(resp.body["accessToken"]), f"serviceAccount:{account} (impersonated)")


def tokeninfo(endpoints: Endpoints, transport: Transport, token: str) -> dict[str, str]:
    """What the token endpoint says of `token` (email, and locally where it came from)."""
    query = urllib.parse.urlencode({"access_token": token})
    try:
        resp = transport.request("GET", f"{endpoints.tokeninfo_uri}?{query}")
    except TransportError as exc:
        raise CredentialError(f"{endpoints.tokeninfo_uri} does not answer: {exc.cause}") from None
    if resp.status != 200 or not isinstance(resp.body, dict):
        raise CredentialError(f"{endpoints.tokeninfo_uri} refused the token (HTTP {resp.status})")
    return {str(k): str(v) for k, v in resp.body.items()}
