"""The Secret Manager backend (google-cloud-secret-manager, imported here only and lazily: the
`gcp` extra). Errors of google-api-core are mapped at this boundary to mlplane's own: nothing
above it sees them, and no value reaches a message."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mlplane.data.secrets.value import (
    REDACTED,
    SecretInfo,
    SecretNotFound,
    SecretValue,
    SecretVersion,
)
from mlplane.errors import PermanentError, PermissionDenied, TransientError

PIP_PACKAGE = "google-cloud-secret-manager"
_DEFAULT: Any = object()
T = TypeVar("T")
_TRANSIENT = (
    "TooManyRequests",
    "ResourceExhausted",
    "ServiceUnavailable",
    "InternalServerError",
    "DeadlineExceeded",
    "GatewayTimeout",
    "Aborted",
)


def _sm() -> Any:
    try:
        from google.cloud import secretmanager_v1
    except ImportError:
        raise PermanentError(
            f"the gcp secrets backend needs the {PIP_PACKAGE} package: "
            f"pip install '{PIP_PACKAGE}>=2.20'"
        ) from None
    return secretmanager_v1


def _default_client(sm: Any) -> Any:
    from google.auth import exceptions as auth_exceptions

    try:
        return sm.SecretManagerServiceClient()
    except auth_exceptions.DefaultCredentialsError:
        raise PermanentError(
            "no Google credentials for Secret Manager: run `gcloud auth application-default "
            "login`, or run where a service account is attached"
        ) from None


def _crc32c(data: bytes) -> int | None:
    """CRC32C of `data` (Secret Manager's integrity check), or None without google-crc32c."""
    try:
        import google_crc32c
    except ImportError:
        return None
    return int(google_crc32c.value(data))


def _state(version: Any) -> str:
    return str(version.state.name).lower()


def _created(version: Any) -> str:
    t = version.create_time
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if t else ""


def _number(resource_name: str) -> int:
    return int(resource_name.rsplit("/", 1)[1])


class SecretManagerStore:
    """Secrets of project `project` in Secret Manager. `client` is a SecretManagerServiceClient
    (default: one with Application Default Credentials); `retry` and `timeout` go to each call
    (the client's defaults unless given)."""

    def __init__(
        self,
        project: str,
        client: Any = None,
        retry: Any = _DEFAULT,
        timeout: float | None = None,
    ) -> None:
        sm = _sm()
        self.project = project
        self.client = client if client is not None else _default_client(sm)
        self._types = sm
        self._options: dict[str, Any] = {}
        if retry is not _DEFAULT:
            self._options["retry"] = retry
        if timeout is not None:
            self._options["timeout"] = timeout

    @classmethod
    def for_project(cls, project_file: Path, project: str) -> SecretManagerStore:
        return cls(project)

    @property
    def parent(self) -> str:
        return f"projects/{self.project}"

    def path(self, name: str) -> str:
        return f"{self.parent}/secrets/{name}"

    def _call(
        self,
        call: Callable[[], T],
        name: str,
        version: int | str | None = None,
        value: SecretValue | None = None,
    ) -> T:
        """Run `call` (which builds its request, so no frame here holds a payload), mapping
        google-api-core errors to mlplane's. The mapped error is raised outside the `except`:
        it carries no chained SDK exception, whose frames hold the request."""
        from google.api_core import exceptions as gexc

        try:
            return call()
        except gexc.GoogleAPICallError as exc:
            error = _map_error(exc, name, version, value)
        raise error

    # ------------------------------------------------------------------ SecretBackend

    def list_secrets(self) -> tuple[SecretInfo, ...]:
        names = self._call(self._secret_names, "*")
        return tuple(
            SecretInfo(n, self._call(functools.partial(self._versions, n), n)) for n in names
        )

    def _secret_names(self) -> list[str]:
        request = self._types.ListSecretsRequest(parent=self.parent)
        pages = self.client.list_secrets(request=request, **self._options)
        return sorted(str(s.name).rsplit("/", 1)[1] for s in pages)

    def _versions(self, name: str) -> tuple[SecretVersion, ...]:
        request = self._types.ListSecretVersionsRequest(parent=self.path(name))
        pages = self.client.list_secret_versions(request=request, **self._options)
        metas = [SecretVersion(name, _number(v.name), _state(v), _created(v)) for v in pages]
        return tuple(sorted(metas, key=lambda m: m.version))

    def access(self, name: str, version: int | str) -> tuple[SecretVersion, SecretValue]:
        sm, client, options = self._types, self.client, self._options
        request = sm.AccessSecretVersionRequest(name=f"{self.path(name)}/versions/{version}")
        number, value, intact = self._call(
            lambda: _unpack(client.access_secret_version(request=request, **options)),
            name,
            version,
        )
        if not intact:
            raise TransientError(f"secret '{name}': the payload's checksum does not match")
        return SecretVersion(name, number, "enabled", ""), value

    def add_version(self, name: str, value: SecretValue) -> SecretVersion:
        client, options = self.client, self._options
        version = self._call(
            lambda: client.add_secret_version(request=self._add_request(name, value), **options),
            name,
            value=value,
        )
        return SecretVersion(name, _number(version.name), _state(version), _created(version))

    def _add_request(self, name: str, value: SecretValue) -> Any:
        sm = self._types
        payload = sm.SecretPayload(data=value.reveal())
        crc = _crc32c(value.reveal())
        if crc is not None:
            payload.data_crc32c = crc
        return sm.AddSecretVersionRequest(parent=self.path(name), payload=payload)

    def set_state(self, name: str, number: int, state: str) -> SecretVersion:
        verb = {"enabled": "enable", "disabled": "disable", "destroyed": "destroy"}[state]
        request_type = getattr(self._types, f"{verb.title()}SecretVersionRequest")
        request = request_type(name=f"{self.path(name)}/versions/{number}")
        method = getattr(self.client, f"{verb}_secret_version")
        v = self._call(lambda: method(request=request, **self._options), name, number)
        return SecretVersion(name, _number(v.name), _state(v), _created(v))

    def exists(self, name: str) -> bool:
        client, options = self.client, self._options
        request = self._types.GetSecretRequest(name=self.path(name))
        try:
            self._call(lambda: client.get_secret(request=request, **options), name)
        except SecretNotFound:
            return False
        return True

    def create(self, name: str) -> None:
        from google.api_core import exceptions as gexc

        sm, client, options = self._types, self.client, self._options
        request = sm.CreateSecretRequest(
            parent=self.parent,
            secret_id=name,
            secret=sm.Secret(replication=sm.Replication(automatic=sm.Replication.Automatic())),
        )

        def create() -> None:
            with contextlib.suppress(gexc.AlreadyExists):  # a racing creator made it
                client.create_secret(request=request, **options)

        self._call(create, name)


def _unpack(response: Any) -> tuple[int, SecretValue, bool]:
    """(version number, value, checksum matches) of an AccessSecretVersionResponse."""
    value = SecretValue(bytes(response.payload.data))
    crc = _crc32c(value.reveal())
    expected = response.payload.data_crc32c if "data_crc32c" in response.payload else None
    intact = crc is None or expected is None or crc == expected
    return _number(response.name), value, intact


def _map_error(
    exc: Exception, name: str, version: int | str | None, value: SecretValue | None
) -> Exception:
    from google.api_core import exceptions as gexc

    detail = _scrub(exc, value)
    if isinstance(exc, gexc.NotFound):
        return SecretNotFound(name, version)
    if isinstance(exc, gexc.PermissionDenied):
        return PermissionDenied(f"Secret Manager denied the call on secret '{name}': {detail}")
    if isinstance(exc, gexc.FailedPrecondition):
        return PermanentError(f"secret '{name}': {detail}")
    message = f"Secret Manager call on secret '{name}' failed: {detail}"
    if type(exc).__name__ in _TRANSIENT:
        return TransientError(message, delay=2.0)
    return PermanentError(message)


def _scrub(exc: Exception, value: SecretValue | None) -> str:
    """The SDK error's message without the value, should a server ever echo it."""
    message = str(getattr(exc, "message", "") or exc)
    if value is not None and len(value):
        data = value.reveal()
        for form in {data.decode(errors="replace"), repr(data), str(data)}:
            message = message.replace(form, REDACTED)
    return message
