"""A workflow's view of one project: its model, its authorizer, the caller's client of Google's
APIs, who the caller is, and an engine acting as the caller."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mlplane.engine.engine import Engine, EngineSettings
from mlplane.engine.journal import EventHook
from mlplane.engine.state import StateStore
from mlplane.errors import ConfigError
from mlplane.iam.authorizer import Authorizer
from mlplane.iam.compiled import policy_for
from mlplane.iam.loading import LoadedProject, load_project
from mlplane.model.principals import Principal
from mlplane.providers.platform import ApiClient, Platform

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mlplane.engine.team_state import TeamState

STATE_DB = "state.db"
TEAM_DIR = "team"  # the team state's copies, under the state directory (provider gcp)


def owner_label(principal: Principal) -> str:
    """The principal as a GCP label value (lowercase letters, digits, '-', '_'; at most 63):
    `alice@acme.com` -> `alice_acme-com`. Used to tell a VM's owner."""
    local, _, domain = principal.email.lower().partition("@")
    return f"{_label_chars(local)}_{_label_chars(domain)}"[:63]


def _label_chars(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


@dataclass
class Session:
    """Opening one costs the compiled policy only (cached, fast); the validated model, the
    client and the caller's identity load on first use.

    `impersonate` (an identity id or a service account email) makes every call carry that
    account's token, obtained with IAM Credentials as Google allows it (it allows no user on a
    process account: the refusal names the trigger to use)."""

    project_file: Path
    authz: Authorizer
    engine_hook: EventHook | None = None  # sees every journal event (progress, fault injection)
    impersonate: str | None = None

    @classmethod
    def open(cls, project_file: Path | str, *, impersonate: str | None = None) -> Session:
        path = Path(project_file).resolve()
        return cls(path, Authorizer(policy_for(path)), impersonate=impersonate)

    @cached_property
    def loaded(self) -> LoadedProject:
        return load_project(self.project_file)

    @property
    def project_id(self) -> str:
        return self.authz.policy.project

    @property
    def zone(self) -> str:
        return self.loaded.project.project.zone

    @property
    def region(self) -> str:
        return self.loaded.project.project.region

    @property
    def provider(self) -> str:
        return self.loaded.project.project.provider

    @property
    def state_dir(self) -> Path:
        return self.project_file.parent / ".mlplane"

    @property
    def store(self) -> StateStore:
        """What mlplane applied, to read: this machine's database (local provider), or the
        team state's newest generation, fetched without locking (gcp; decision 1500)."""
        team = self.team
        return self.local_store if team is None else team.read_store()

    @cached_property
    def local_store(self) -> StateStore:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return StateStore(self.state_dir / STATE_DB)

    @cached_property
    def team(self) -> TeamState | None:
        """The team state in Cloud Storage (`provider = "gcp"`); None locally. Decided from the
        compiled policy, so the local provider loads nothing more than before."""
        if self.authz.policy.provider != "gcp":
            return None
        from mlplane.workflows import compose

        return compose.team_state(self)

    @cached_property
    def platform(self) -> Platform:
        from mlplane.workflows import compose

        return compose.platform(self)

    @cached_property
    def api(self) -> ApiClient:
        """The caller's client of Google's APIs (the agent's locally, Google's on gcp)."""
        from mlplane.workflows import compose

        return compose.client(self, impersonate=self.impersonate)

    @cached_property
    def principal(self) -> Principal:
        """Whom the caller's credentials belong to (never a flag or variable)."""
        from mlplane.workflows import compose

        return compose.principal(self.api)

    def identity(self, identity: str) -> Principal:
        """The service-account principal of an identity of the model."""
        return Principal("serviceAccount", self.authz.policy.identities[identity])

    def email(self, identity: str) -> str:
        return self.authz.policy.identities[identity]

    def endpoints_service_or_none(self) -> str | None:
        ref = self.loaded.project.resources.endpoints_services.get("models")
        return self.loaded.project.resolve(ref) if ref is not None else None

    def endpoints_service(self) -> str:
        name = self.endpoints_service_or_none()
        if name is None:
            raise ConfigError(
                str(self.project_file), "resources.endpoints_services.models", "missing"
            )
        return name

    def engine(self) -> Engine:
        """An engine whose provider calls act as the caller (the APIs re-check each call)."""
        from mlplane.workflows import compose

        providers = compose.provider_set(self, self.api)
        settings = EngineSettings(project=self.project_id)
        store = self.engine_store()
        return Engine(store, providers, self.authz, settings, on_event=self.engine_hook)

    def engine_store(self) -> StateStore:
        """The store the engine applies to: this machine's database (local provider), or the
        team state's working copy, whose lease every apply takes (lock, fetch, upload; gcp)."""
        team = self.team
        return self.local_store if team is None else team.working_store()
