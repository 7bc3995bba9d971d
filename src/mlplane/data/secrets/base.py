"""What a secrets backend implements. Backends store and fetch; they do not authorize (the
`Secrets` facade does, once, for every backend) and they never put a value in an error."""

from __future__ import annotations

from typing import Protocol

from mlplane.data.secrets.value import SecretInfo, SecretValue, SecretVersion


class SecretBackend(Protocol):
    """Names reaching a backend are already validated (`check_name`)."""

    def list_secrets(self) -> tuple[SecretInfo, ...]:
        """Every secret with its versions' metadata, sorted by name."""
        ...

    def access(self, name: str, version: int | str) -> tuple[SecretVersion, SecretValue]:
        """The value of `version` (a number or 'latest': the newest enabled version).
        Raises SecretNotFound."""
        ...

    def add_version(self, name: str, value: SecretValue) -> SecretVersion:
        """Store `value` as the secret's next version. Raises SecretNotFound if the secret does
        not exist (the facade authorizes creating it, then calls `create`)."""
        ...

    def set_state(self, name: str, number: int, state: str) -> SecretVersion:
        """Enable, disable or destroy (irreversibly: the value is erased) version `number`.
        Raises SecretNotFound."""
        ...

    def exists(self, name: str) -> bool:
        """Whether the secret exists (a metadata read: `secretmanager.secrets.get`)."""
        ...

    def create(self, name: str) -> None:
        """Create an empty secret; a secret that already exists is left as it is."""
        ...
