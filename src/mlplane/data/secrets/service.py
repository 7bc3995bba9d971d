"""`Secrets`: the secrets SDK that workload code and the CLI use. Every call is authorized for
the acting principal (`Caller`) before a backend is touched, the same way for every backend."""

from __future__ import annotations

import importlib
import os
import tomllib
from collections.abc import Callable
from pathlib import Path

from mlplane.apis.request import DryRunLog
from mlplane.data.identity import Caller
from mlplane.data.secrets import requests
from mlplane.data.secrets.base import SecretBackend
from mlplane.data.secrets.value import (
    SecretInfo,
    SecretNotFound,
    SecretValue,
    SecretVersion,
    check_name,
    check_value,
    check_version,
)
from mlplane.errors import ConfigError
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

# backend -> "module:factory", the factory taking (project_file, project id). Imported on use,
# so google.cloud is imported only when the gcp backend is.
BACKENDS: dict[str, str] = {
    "local": "mlplane.data.secrets.local:LocalSecretStore.for_project",
    "gcp": "mlplane.data.secrets.gcp:SecretManagerStore.for_project",
    "secret-manager": "mlplane.data.secrets.gcp:SecretManagerStore.for_project",
}
BACKEND_ENV = "MLPLANE_SECRETS_BACKEND"

LIST = ("secretmanager.secrets.list", "secretmanager.versions.list")
ACCESS = "secretmanager.versions.access"
ADD = "secretmanager.versions.add"
CREATE = "secretmanager.secrets.create"
GET = "secretmanager.secrets.get"
# version state -> the permission that sets it
STATES = {
    "enabled": "secretmanager.versions.enable",
    "disabled": "secretmanager.versions.disable",
    "destroyed": "secretmanager.versions.destroy",
}


class Secrets:
    """The project's secrets as the acting principal may see them."""

    def __init__(self, caller: Caller, backend: SecretBackend) -> None:
        self.caller = caller
        self.backend = backend

    @property
    def principal(self) -> Principal:
        return self.caller.principal

    def _ref(self, name: str) -> ResourceRef:
        return ResourceRef("secret", name, self.caller.project)

    def list(self) -> tuple[SecretInfo, ...]:
        """Every secret and its versions' metadata (never values)."""
        self.caller.require(LIST, ResourceRef.project_root(self.caller.project))
        return self.backend.list_secrets()

    def get(self, name: str, version: int | str = "latest") -> SecretValue:
        return self.get_version(name, version)[1]

    def get_version(
        self, name: str, version: int | str = "latest"
    ) -> tuple[SecretVersion, SecretValue]:
        check_name(name)
        number = check_version(version)
        self.caller.require(ACCESS, self._ref(name))
        return self.backend.access(name, number)

    def set(self, name: str, value: SecretValue) -> SecretVersion:
        """Add `value` as the secret's next version, creating the secret if it is new (which
        takes `secretmanager.secrets.create` too)."""
        check_name(name)
        check_value(value)
        self.caller.require(ADD, self._ref(name))
        try:
            return self.backend.add_version(name, value)
        except SecretNotFound:
            self.caller.require(CREATE, self._ref(name))
            self.backend.create(name)
            return self.backend.add_version(name, value)

    def enable(self, name: str, version: int) -> SecretVersion:
        return self._set_state(name, version, "enabled")

    def disable(self, name: str, version: int) -> SecretVersion:
        """`latest` then skips this version; `get` of it fails until it is enabled again."""
        return self._set_state(name, version, "disabled")

    def destroy(self, name: str, version: int) -> SecretVersion:
        """Erase the version's value for good (its number and metadata stay)."""
        return self._set_state(name, version, "destroyed")

    def _set_state(self, name: str, version: int | str, state: str) -> SecretVersion:
        check_name(name)
        number = check_version(version)
        if not isinstance(number, int):
            raise ConfigError("version", "", "name a version number, not 'latest'")
        self.caller.require(STATES[state], self._ref(name))
        return self.backend.set_state(name, number, state)

    # ------------------------------------------------------------------ dry runs

    def rehearse_set(self, name: str, value: SecretValue, log: DryRunLog) -> None:
        """`set --dry-run`: validate and authorize as `set` would, then log the Secret Manager
        calls the gcp backend would make (a create first when the secret is new); the value
        itself is never logged."""
        check_name(name)
        check_value(value)
        self.caller.require(ADD, self._ref(name))
        project = self.caller.project
        self._note_backend(log, "AddSecretVersion")
        known = self.caller.authz.authorize(self.principal, GET, self._ref(name)).allowed
        if known and self.backend.exists(name):
            log.note(f"secret '{name}' exists: a new version is added")
        else:
            self.caller.require(CREATE, self._ref(name))
            log.note(
                f"secret '{name}' does not exist: it is created first"
                if known
                else f"whether secret '{name}' exists is not readable by you (needs {GET}): "
                "if it does not, it is created first"
            )
            log.send(requests.create(project, name))
        log.send(requests.add_version(project, name, len(value)))

    def rehearse_state(self, name: str, version: int | str, state: str, log: DryRunLog) -> None:
        """`enable|disable|destroy --dry-run`: validate and authorize, log the call."""
        check_name(name)
        number = check_version(version)
        if not isinstance(number, int):
            raise ConfigError("version", "", "name a version number, not 'latest'")
        self.caller.require(STATES[state], self._ref(name))
        self._note_backend(log, f"{requests.VERBS[state].title()}SecretVersion")
        log.note(f"whether version {number} of '{name}' exists is checked by the server")
        log.send(requests.set_state(self.caller.project, name, number, state))

    def _note_backend(self, log: DryRunLog, rpc: str) -> None:
        if type(self.backend).__name__ != "SecretManagerStore":
            log.note(
                "secrets backend: local (an encrypted store on this machine, no HTTP); below, "
                "the Secret Manager calls the gcp backend would make"
            )
        log.note(requests.GRPC.format(rpc))


def backend_name(project_file: Path) -> str:
    """$MLPLANE_SECRETS_BACKEND, else `[data] secrets` in mlplane.toml (`local` or
    `secret-manager`), else the project's provider (`local` or `gcp`)."""
    name = os.environ.get(BACKEND_ENV)
    if not name:
        with open(project_file, "rb") as f:
            doc = tomllib.load(f)
        provider = str(doc.get("project", {}).get("provider", "local"))
        name = str(doc.get("data", {}).get("secrets", provider))
    if name not in BACKENDS:
        raise ConfigError(
            BACKEND_ENV, "", f"unknown secrets backend '{name}' (one of {', '.join(BACKENDS)})"
        )
    return name


def load_backend(name: str, project_file: Path, project: str) -> SecretBackend:
    module_name, _, attr = BACKENDS[name].partition(":")
    target: object = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    factory: Callable[[Path, str], SecretBackend] = target  # type: ignore[assignment]
    return factory(project_file, project)


def open_secrets(
    project_file: Path | str | None = None,
    principal: Principal | str | None = None,
    backend: str | SecretBackend | None = None,
) -> Secrets:
    """The project's secrets for the acting principal (see `Caller.resolve`), on `backend`
    ('local', 'gcp', an instance, or by default the project's provider)."""
    caller = Caller.resolve(project_file, principal)
    if backend is None or isinstance(backend, str):
        name = backend or backend_name(caller.project_file)
        if name not in BACKENDS:
            raise ConfigError("backend", "", f"unknown secrets backend '{name}'")
        backend = load_backend(name, caller.project_file, caller.project)
    return Secrets(caller, backend)
