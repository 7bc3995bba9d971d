"""Acting as someone in tests, the way mlplane's users and workloads do: by tokens.

`Team` runs a project's local agent and signs team members in on this (test) machine, in a
config directory of the test's own. A test acts as
- a user: that user's sign-in credential (GOOGLE_APPLICATION_CREDENTIALS names it);
- a service account: a token the project's admin obtains with IAM Credentials'
  `generateAccessToken` (admins hold roles/owner, as on GCP), handed over as gcloud takes one
  (CLOUDSDK_AUTH_ACCESS_TOKEN_FILE).
Nothing here names an identity to the agent: every call carries a token it issued.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from mlplane.apis.credentials import StaticToken, UserCredentials, impersonated
from mlplane.apis.endpoints import Endpoints
from mlplane.apis.signin import read_credential
from mlplane.apis.transport import Transport
from mlplane.providers.gcp.client import GoogleApis
from mlplane.providers.local import signin
from mlplane.providers.local.control import AgentHandle, find_agent, start_agent, stop_agent
from mlplane.workflows.session import Session

ADMIN = "admin@acme.com"
# Variables that would make a test act as someone else than it says.
AMBIENT = (
    "GCE_METADATA_HOST",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE",
    "MLPLANE_PROJECT",
    "MLPLANE_ARTIFACTS_BACKEND",
    "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE",
    "CLOUDSDK_AUTH_TOKEN_HOST",
)


def with_admin(toml: str, admin: str = ADMIN) -> str:
    """A project file text whose [team] names `admin` as the project's admin."""
    return toml.replace("[team]\n", f'[team]\nadmins = ["user:{admin}"]\n', 1)


class Team:
    def __init__(self, project_file: Path, config_dir: Path) -> None:
        self.project_file = project_file
        self.config_dir = config_dir
        self.handle: AgentHandle | None = None
        self._tokens: dict[str, Path] = {}

    # -- the agent ------------------------------------------------------------------------------

    def up(self) -> AgentHandle:
        with self.environment():
            self.handle = start_agent(self.project_file).agent
        return self.handle

    def down(self) -> None:
        with self.environment():
            stop_agent(self.project_file)
        self.handle = None

    @property
    def endpoints(self) -> Endpoints:
        handle = self.handle or find_agent(self.project_file)
        assert handle is not None, "the agent is not running"
        return handle.endpoints

    # -- identities -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def environment(self, **extra: str) -> Iterator[None]:
        """os.environ with this team's config directory, no ambient identity, and `extra`."""
        saved = dict(os.environ)
        for name in AMBIENT:
            os.environ.pop(name, None)
        os.environ["MLPLANE_CONFIG_DIR"] = str(self.config_dir)
        os.environ.update(extra)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def login(self, email: str, *, activate: bool = False) -> Path:
        """Sign `email` in on this test machine; the active account changes only if asked
        (an admin signed in for a token must not become the default identity)."""
        with self.environment():
            if read_credential(email) is None:
                signin.login(email, activate=activate)
            elif activate:
                signin.make_active(email)
            return self.config_dir / "credentials" / f"{email}.json"

    def _user_credentials(self, email: str) -> UserCredentials:
        self.login(email)
        with self.environment():
            credential = read_credential(email)
        assert credential is not None
        return UserCredentials(credential, self.endpoints.token_uri, Transport())

    def token_file(self, identity: str) -> Path:
        """A file holding a token of service account `identity` (id or email), obtained by the
        admin with generateAccessToken."""
        if identity not in self._tokens:
            token = impersonated(
                self._user_credentials(ADMIN), self._email(identity), self.endpoints, Transport()
            )
            path = self.config_dir / f"token-{identity}"
            path.write_text(token.value)
            path.chmod(0o600)
            self._tokens[identity] = path
        return self._tokens[identity]

    def _email(self, identity: str) -> str:
        if "@" in identity:
            return identity
        session = Session.open(self.project_file)
        return session.authz.policy.identities[identity]

    def env(self, who: str) -> dict[str, str]:
        """Variables that make a process act as `who`: a user's email, or an identity id."""
        base = {"MLPLANE_CONFIG_DIR": str(self.config_dir)}
        if "@" in who and not who.endswith(".gserviceaccount.com"):
            return base | {"GOOGLE_APPLICATION_CREDENTIALS": str(self.login(who))}
        return base | {"CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(self.token_file(who))}

    @contextlib.contextmanager
    def acting(self, who: str) -> Iterator[None]:
        """In-process calls (main(), the data SDK) act as `who` inside the block."""
        env = self.env(who)
        with self.environment(**env):
            yield

    def api(self, who: str) -> GoogleApis:
        if "@" in who and not who.endswith(".gserviceaccount.com"):
            return GoogleApis(self.endpoints, self._user_credentials(who))
        value = self.token_file(who).read_text()
        return GoogleApis(self.endpoints, StaticToken(value, f"serviceAccount:{who}"))

    def session(self, who: str, project_file: Path | None = None) -> Session:
        """A workflow session whose calls act as `who`."""
        session = Session.open(project_file or self.project_file)
        session.__dict__["api"] = self.api(who)
        return session
