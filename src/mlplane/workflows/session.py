"""A workflow's view of one project: its model, its authorizer, and engines per principal."""

from __future__ import annotations

import os
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

STATE_DB = "state.db"


def owner_label(principal: Principal) -> str:
    """The principal as a GCP label value (lowercase letters, digits, '-', '_'; at most 63):
    `alice@acme.com` -> `alice_acme-com`. Used to tell a VM's owner."""
    local, _, domain = principal.email.lower().partition("@")
    return f"{_label_chars(local)}_{_label_chars(domain)}"[:63]


def _label_chars(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


@dataclass
class Session:
    """Opening one costs the compiled policy only (cached, fast); the validated model loads on
    first use of `loaded` (pydantic, the catalog)."""

    project_file: Path
    authz: Authorizer
    engine_hook: EventHook | None = None  # sees every journal event (progress, fault injection)

    @classmethod
    def open(cls, project_file: Path | str) -> Session:
        path = Path(project_file).resolve()
        return cls(path, Authorizer(policy_for(path)))

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
    def state_dir(self) -> Path:
        return self.project_file.parent / ".mlplane"

    @cached_property
    def store(self) -> StateStore:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return StateStore(self.state_dir / STATE_DB)

    def identity(self, identity: str) -> Principal:
        """The service-account principal of an identity of the model."""
        return Principal("serviceAccount", self.authz.policy.identities[identity])

    def email(self, identity: str) -> str:
        return self.authz.policy.identities[identity]

    def endpoints_service(self) -> str:
        ref = self.loaded.project.resources.endpoints_services.get("models")
        if ref is None:
            raise ConfigError(
                str(self.project_file), "resources.endpoints_services.models", "missing"
            )
        return self.loaded.project.resolve(ref)

    def user(self, as_: str | None = None) -> Principal:
        """The acting user: `--as`, else $MLPLANE_USER, else the project's first user."""
        text = as_ or os.environ.get("MLPLANE_USER")
        if text:
            return self.authz.principal(text)
        for members in self.authz.policy.process_members.values():
            for member in members:
                if member.startswith("user:"):
                    return Principal.parse(member)
        raise ConfigError(
            str(self.project_file),
            "team.principals",
            "no user to act as: name one with --as or $MLPLANE_USER, or add a 'user:EMAIL'",
        )

    def engine(self, principal: Principal) -> Engine:
        """An engine whose provider calls act as `principal` (the agent re-checks them)."""
        from mlplane.providers.local.client import local_providers

        if self.loaded.project.project.provider != "local":
            raise ConfigError(
                str(self.project_file),
                "project.provider",
                "only the 'local' provider can apply resources in this version",
            )
        providers = local_providers(self.project_file, principal, project=self.project_id)
        settings = EngineSettings(project=self.project_id)
        return Engine(self.store, providers, self.authz, settings, on_event=self.engine_hook)
