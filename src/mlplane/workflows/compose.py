"""The composition root: the one module above the providers that names `providers.local` or
`providers.gcp` (an import-linter contract holds everything else to it).

It picks the platform of a project (`project.provider`), builds the one client of Google's
APIs for it (the agent's endpoints locally, Google's on `gcp`; the caller's credentials found
as Google's libraries find them), the engine's providers on that client, and reaches the
local agent's lifecycle and this machine's sign-in.
"""

from __future__ import annotations

from mlplane.errors import ConfigError

# Names for annotations only: `mlplane status` imports this module on its start-up path
# (decision 0005), so nothing heavier than mlplane.errors is imported at module level.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from mlplane.apis.endpoints import Endpoints
    from mlplane.apis.request import DryRunLog
    from mlplane.engine.team_state import TeamState
    from mlplane.model.principals import Principal
    from mlplane.providers.platform import ApiClient, Platform
    from mlplane.providers.registry import ProviderSet
    from mlplane.providers.replica_view import AgentView
    from mlplane.workflows.session import Session

PROVIDERS = ("local", "gcp")


def provider_name(session: Session) -> str:
    name = session.loaded.project.project.provider
    if name not in PROVIDERS:
        raise ConfigError(
            str(session.project_file), "project.provider", f"'{name}' (one of {PROVIDERS})"
        )
    return name


def platform(session: Session) -> Platform:
    if provider_name(session) == "gcp":
        from mlplane.providers.gcp.platform import GcpPlatform

        return GcpPlatform(session.endpoints_service_or_none())
    from mlplane.providers.local.platform import LocalPlatform

    return LocalPlatform(session.project_file)


def client(
    session: Session, *, impersonate: str | None = None, endpoints: Endpoints | None = None
) -> ApiClient:
    """The caller's client of Google's APIs for this project. Variables that name endpoints
    (gcloud's overrides, as set inside an instance or build) take precedence."""
    import importlib  # not at module level: its package imports warnings (`status`'s start-up)
    import os

    from mlplane.apis.credentials import (
        CredentialError,
        ImpersonationRefused,
        NotSignedIn,
        default_credentials,
        impersonated,
    )
    from mlplane.apis.endpoints import Endpoints
    from mlplane.apis.transport import Transport
    from mlplane.errors import PermissionDenied
    from mlplane.providers.gcp.client import GoogleApis, Unauthorized

    # Application Default Credentials (google-auth) by name: only `provider = "gcp"` loads them.
    google = importlib.import_module("mlplane.providers.gcp.credentials").GoogleAuthCredentials

    ends = endpoints or Endpoints.from_environment(os.environ) or platform(session).endpoints()
    transport = Transport()
    try:
        creds: Any = default_credentials(ends, transport, google=google)
        if impersonate:
            account = session.authz.policy.identities.get(impersonate, impersonate)
            creds = impersonated(creds, account, ends, transport)
    except ImpersonationRefused as exc:
        raise PermissionDenied(str(exc)) from None
    except (NotSignedIn, CredentialError) as exc:
        raise Unauthorized(str(exc)) from None
    return GoogleApis(ends, creds, transport)


def is_unauthorized(exc: BaseException) -> bool:
    """Whether `exc` is the client's refusal of the caller's credentials (none found, or the
    endpoint refused them after a refresh): `mlplane up` on gcp says how to sign in."""
    from mlplane.providers.gcp.client import Unauthorized

    return isinstance(exc, Unauthorized)


def principal(api: ApiClient) -> Principal:
    """Whom `api`'s credentials belong to."""
    from mlplane.providers.gcp.client import GoogleApis
    from mlplane.providers.gcp.identity import principal_of

    assert isinstance(api, GoogleApis)
    return principal_of(api)


def access_token(api: ApiClient) -> str:
    from mlplane.providers.gcp.client import GoogleApis

    assert isinstance(api, GoogleApis)
    return api.credentials.token()


def dry_run_client(session: Session, log: DryRunLog) -> ApiClient:
    """A client over the caller's (same endpoints, credentials, transport) that sends reads and
    logs every other call in `log` instead of sending it (`--dry-run`)."""
    from mlplane.providers.gcp.client import GoogleApis
    from mlplane.providers.gcp.dryrun import DryRunApis

    api = session.api
    assert isinstance(api, GoogleApis)
    return DryRunApis(api, log)


def provider_set(session: Session, api: ApiClient) -> ProviderSet:
    """The engine's providers: every kind of the project's provider, over `api` (marked
    `records_only` when `api` is a dry run's)."""
    from dataclasses import replace

    from mlplane.providers.base import ProviderContext
    from mlplane.providers.gcp.dryrun import DryRunApis
    from mlplane.providers.registry import REGISTRY

    ctx = ProviderContext(
        project=session.project_id,
        zone=session.zone,
        region=session.loaded.project.project.region,
        workdir=session.project_file.parent,
        apis=api,
    )
    providers = REGISTRY.build(provider_name(session), ctx)
    return replace(providers, records_only=isinstance(api, DryRunApis))


def team_state(session: Session) -> TeamState:
    """The team state of a `provider = "gcp"` project: the object `[state]` names, read and
    written with the caller's credentials (decision 1500)."""
    import shlex
    import sys

    from mlplane.engine.team_state import TeamState
    from mlplane.providers.gcp.client import GoogleApis
    from mlplane.providers.gcp.storage_objects import CloudStorageObjects
    from mlplane.workflows.session import TEAM_DIR

    api = session.api
    assert isinstance(api, GoogleApis)
    project = session.loaded.project
    objects = CloudStorageObjects(project.state_bucket, api.credentials, transport=api.transport)

    def warn(line: str) -> None:
        print(f"mlplane: {line}", file=sys.stderr)

    return TeamState(
        objects,
        project.state.prefix,
        session.state_dir / TEAM_DIR,
        who=lambda: str(session.principal),
        operation=" ".join(["mlplane", *map(shlex.quote, sys.argv[1:])])[:500],
        lock_timeout=project.state.lock_timeout,
        notify=warn,
    )


# -- the local agent ----------------------------------------------------------------------------


def agent_up(project_file: Path, timeout: float = 30.0) -> Any:
    from mlplane.providers.local.control import start_agent

    return start_agent(project_file, timeout=timeout)


def agent_down(project_file: Path, timeout: float = 20.0) -> Any:
    from mlplane.providers.local.control import stop_agent

    return stop_agent(project_file, timeout=timeout)


def local_processes(project_file: str) -> AgentView | None:
    """What the project's local agent runs (its processes, and which resources it holds),
    asked with the caller's credentials (a token at hand if there is one, else the signed-in
    user's, exchanged and cached); None when no agent runs for the project. `mlplane status`'s
    start-up path: lean imports only."""
    from mlplane.apis import token_cache
    from mlplane.errors import MlplaneError
    from mlplane.providers.local import admin_client
    from mlplane.providers.replica_view import AgentView

    port = admin_client.agent_port(project_file)
    if port is None:
        return None
    base = f"http://127.0.0.1:{port}"
    path = "/_mlplane/processes"
    try:
        token = token_cache.fast_token(f"{base}/oauth2/token")
        status, body = admin_client.get_json(port, path, token) if token else (401, None)
        if status == 401:  # none at hand, or a stale one: the slow way, which caches it
            status, body = admin_client.get_json(port, path, _fresh_token(base, stale=token))
    except admin_client.AdminError as exc:
        raise MlplaneError(str(exc)) from None
    if status != 200 or not isinstance(body, dict):
        raise MlplaneError(f"the local agent answered {status} for {path}: {body}")
    return AgentView.from_json(body)


def local_frontend_base(port: str) -> str:
    """Where users reach the local load balancer listening on `port`."""
    from mlplane.providers.local.admin_client import frontend_base

    return frontend_base(port)


def _fresh_token(base_url: str, stale: str | None) -> str:
    from mlplane.apis.credentials import CredentialError, NotSignedIn, default_credentials
    from mlplane.apis.endpoints import Endpoints
    from mlplane.apis.transport import Transport
    from mlplane.errors import MlplaneError

    try:
        creds = default_credentials(Endpoints.agent(base_url), Transport())
        if stale:
            creds.invalidate()  # forgets the cached token the agent refused
        return creds.token()
    except (NotSignedIn, CredentialError) as exc:
        raise MlplaneError(str(exc)) from None


def agent_running(project_file: Path) -> bool:
    from mlplane.providers.local.control import find_agent

    return find_agent(project_file) is not None


# -- sign-in on this machine --------------------------------------------------------------------


def login(account: str) -> None:
    from mlplane.providers.local import signin

    signin.login(account)


def activate(account: str) -> None:
    from mlplane.providers.local import signin

    signin.make_active(account)


def revoke(account: str) -> bool:
    from mlplane.providers.local import signin

    return signin.revoke(account)


def docker_engine_missing(session: Session) -> str:
    """Why no Docker engine is reachable for this project's local builds ('' when one is, and
    always on Google Cloud, where Cloud Build brings its own)."""
    if provider_name(session) != "local":
        return ""
    from mlplane.providers.local.engine import find_engine, why_not

    return "" if find_engine() is not None else why_not()


def local_registry(session: Session) -> str:
    """HOST:PORT of the project's local Artifact Registry ('' on Google Cloud or when none)."""
    if provider_name(session) != "local":
        return ""
    from mlplane.providers.local.paths import AgentPaths
    from mlplane.providers.local.registry_info import read_address

    return read_address(AgentPaths.for_project(session.project_file).root)
