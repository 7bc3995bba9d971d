"""The client a provider context carries, or one built from the environment."""

from __future__ import annotations

from mlplane.apis.credentials import default_credentials
from mlplane.apis.endpoints import Endpoints
from mlplane.apis.transport import Transport
from mlplane.errors import ConfigError
from mlplane.providers.base import ProviderContext

from .client import GoogleApis
from .credentials import GoogleAuthCredentials


def apis_from_environment(endpoints: Endpoints | None = None) -> GoogleApis:
    """Endpoints from gcloud's override variables (else Google's), credentials found as
    Google's libraries find them."""
    import os

    endpoints = endpoints or Endpoints.from_environment(os.environ) or Endpoints.google()
    transport = Transport()
    creds = default_credentials(endpoints, transport, google=GoogleAuthCredentials)
    return GoogleApis(endpoints, creds, transport)


def apis_for(ctx: ProviderContext) -> GoogleApis:
    if ctx.apis is None:
        return apis_from_environment()
    if not isinstance(ctx.apis, GoogleApis):
        raise ConfigError(
            "provider context", "apis", f"not a GoogleApis: {type(ctx.apis).__name__}"
        )
    return ctx.apis
