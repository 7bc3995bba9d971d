"""Where each Google API is served: Google's own endpoints, or the local agent's mounts.

The same variables the gcloud CLI honours carry an override, so one setting points both gcloud
and mlplane (and the workloads the agent runs) at the agent:

    CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE=http://127.0.0.1:PORT/compute/v1/
    CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEMANAGEMENT=http://127.0.0.1:PORT/servicemanagement/
    ... SERVICEUSAGE, CLOUDBUILD, IAMCREDENTIALS
    CLOUDSDK_AUTH_TOKEN_HOST=http://127.0.0.1:PORT/oauth2/token

Every shipped API has its variable (IAM, CLOUDRESOURCEMANAGER, STORAGE, ... too: `mlplane up` on
Google Cloud reads them, and tests point them at a loopback fake); the agent's endpoints name only
the APIs it serves (`AGENT_APIS`).

A *root* is what a discovery document calls `rootUrl`: a method's URL is root + servicePath +
path. For compute, whose servicePath is `compute/v1/`, an override names root + servicePath.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .discovery import AGENT_APIS, VERSIONS, load

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
OVERRIDE_PREFIX = "CLOUDSDK_API_ENDPOINT_OVERRIDES_"
TOKEN_HOST = "CLOUDSDK_AUTH_TOKEN_HOST"
PROJECT = "CLOUDSDK_CORE_PROJECT"
APIS = tuple(VERSIONS)


@dataclass(frozen=True)
class Endpoints:
    """Root URL per API, plus the OAuth token endpoint."""

    roots: Mapping[str, str] = field(default_factory=dict)
    token_uri: str = GOOGLE_TOKEN_URI

    def root(self, api: str) -> str:
        return self.roots.get(api) or load(api).root_url

    def url(self, api: str) -> str:
        """root + servicePath: what gcloud's override for this API is."""
        return self.root(api) + load(api).service_path

    @property
    def tokeninfo_uri(self) -> str:
        return self.token_uri.rsplit("/", 1)[0] + "/tokeninfo"

    @property
    def is_google(self) -> bool:
        return not self.roots and self.token_uri == GOOGLE_TOKEN_URI

    @classmethod
    def google(cls) -> Endpoints:
        return cls()

    @classmethod
    def agent(cls, base_url: str) -> Endpoints:
        """The local agent at `base_url` (http://127.0.0.1:PORT): compute at /compute/v1/,
        every other API it serves under /<api>/."""
        base = base_url.rstrip("/")
        roots = {api: f"{base}/" if api == "compute" else f"{base}/{api}/" for api in AGENT_APIS}
        return cls(roots, f"{base}/oauth2/token")

    def environment(self, project: str | None = None) -> dict[str, str]:
        """The variables that point gcloud (and mlplane) at these endpoints."""
        env = {
            f"{OVERRIDE_PREFIX}{api.upper()}": self.url(api) for api in APIS if api in self.roots
        }
        if self.token_uri != GOOGLE_TOKEN_URI:
            env[TOKEN_HOST] = self.token_uri
        if project:
            env[PROJECT] = project
        return env

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Endpoints | None:
        """Endpoints named by override variables, or None when none is set."""
        roots: dict[str, str] = {}
        for api in APIS:
            value = env.get(f"{OVERRIDE_PREFIX}{api.upper()}")
            if value:
                value = value if value.endswith("/") else value + "/"
                path = load(api).service_path
                roots[api] = value[: -len(path)] if path and value.endswith(path) else value
        token = env.get(TOKEN_HOST) or GOOGLE_TOKEN_URI
        if not roots and token == GOOGLE_TOKEN_URI:
            return None
        return cls(roots, token)
