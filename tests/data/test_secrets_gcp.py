"""The Secret Manager backend, through the official client (google-cloud-secret-manager) with a
fake transport in place of the network: the requests it sends are the client's own types, the
responses are built from them, and google-api-core errors come back as mlplane's."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

sm = pytest.importorskip(
    "google.cloud.secretmanager_v1",
    reason="google-cloud-secret-manager is not installed: pip install google-cloud-secret-manager",
)

from google.api_core import exceptions as gexc  # noqa: E402
from google.api_core import gapic_v1  # noqa: E402
from google.auth.credentials import AnonymousCredentials  # noqa: E402
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (  # noqa: E402
    SecretManagerServiceTransport,
)

from mlplane.data.secrets import SecretNotFound, SecretValue, open_secrets  # noqa: E402
from mlplane.data.secrets.gcp import SecretManagerStore  # noqa: E402
from mlplane.errors import PermanentError, PermissionDenied, TransientError  # noqa: E402

PROJECT = "acme-ml"
VALUE = b"sk-gcp-do-not-leak-7f3a"
METHODS = (
    "list_secrets",
    "list_secret_versions",
    "access_secret_version",
    "add_secret_version",
    "create_secret",
    "get_secret",
    "disable_secret_version",
    "enable_secret_version",
    "destroy_secret_version",
)


class FakeTransport(SecretManagerServiceTransport):
    """An in-memory Secret Manager behind the client's own transport interface. Handlers get the
    request object the client built; `fail[method]` makes that method's next call raise."""

    def __init__(self) -> None:
        super().__init__(credentials=AnonymousCredentials())
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []
        self.secrets: dict[str, list[tuple[Any, Any]]] = {}  # name -> [(version, payload)]
        self.fail: dict[str, Exception] = {}
        self._raw = {m: self._recording(m, getattr(self, "_" + m)) for m in METHODS}
        self._wrapped_methods = {
            fn: gapic_v1.method.wrap_method(fn, default_timeout=60.0) for fn in self._raw.values()
        }

    def _recording(self, method: str, handler: Callable[[Any], Any]) -> Callable[..., Any]:
        def call(request: Any, **kwargs: Any) -> Any:
            self.calls.append((method, request, kwargs))
            if method in self.fail:
                raise self.fail.pop(method)
            return handler(request)

        return call

    @property
    def list_secrets(self) -> Any:
        return self._raw["list_secrets"]

    @property
    def list_secret_versions(self) -> Any:
        return self._raw["list_secret_versions"]

    @property
    def access_secret_version(self) -> Any:
        return self._raw["access_secret_version"]

    @property
    def add_secret_version(self) -> Any:
        return self._raw["add_secret_version"]

    @property
    def create_secret(self) -> Any:
        return self._raw["create_secret"]

    @property
    def get_secret(self) -> Any:
        return self._raw["get_secret"]

    @property
    def disable_secret_version(self) -> Any:
        return self._raw["disable_secret_version"]

    @property
    def enable_secret_version(self) -> Any:
        return self._raw["enable_secret_version"]

    @property
    def destroy_secret_version(self) -> Any:
        return self._raw["destroy_secret_version"]

    def _set_state(self, request: Any, state: Any) -> Any:
        secret, _, version = request.name.partition("/versions/")
        versions = self.secrets.get(secret) or []
        if int(version) > len(versions):
            raise gexc.NotFound(f"Secret Version [{request.name}] not found")
        v, _ = versions[int(version) - 1]
        v.state = state
        return v

    def _disable_secret_version(self, request: Any) -> Any:
        assert isinstance(request, sm.DisableSecretVersionRequest)
        return self._set_state(request, sm.SecretVersion.State.DISABLED)

    def _enable_secret_version(self, request: Any) -> Any:
        assert isinstance(request, sm.EnableSecretVersionRequest)
        return self._set_state(request, sm.SecretVersion.State.ENABLED)

    def _destroy_secret_version(self, request: Any) -> Any:
        assert isinstance(request, sm.DestroySecretVersionRequest)
        return self._set_state(request, sm.SecretVersion.State.DESTROYED)

    def _list_secrets(self, request: Any) -> Any:
        assert isinstance(request, sm.ListSecretsRequest)
        assert request.parent == f"projects/{PROJECT}"
        return sm.ListSecretsResponse(secrets=[sm.Secret(name=n) for n in self.secrets])

    def _list_secret_versions(self, request: Any) -> Any:
        assert isinstance(request, sm.ListSecretVersionsRequest)
        if request.parent not in self.secrets:
            raise gexc.NotFound(f"Secret [{request.parent}] not found")
        newest_first = [v for v, _ in reversed(self.secrets[request.parent])]
        return sm.ListSecretVersionsResponse(versions=newest_first)

    def _access_secret_version(self, request: Any) -> Any:
        assert isinstance(request, sm.AccessSecretVersionRequest)
        secret, _, version = request.name.partition("/versions/")
        versions = self.secrets.get(secret) or []
        if not versions or (version != "latest" and int(version) > len(versions)):
            raise gexc.NotFound(f"Secret Version [{request.name}] not found")
        v, payload = versions[-1] if version == "latest" else versions[int(version) - 1]
        return sm.AccessSecretVersionResponse(name=v.name, payload=payload)

    def _add_secret_version(self, request: Any) -> Any:
        assert isinstance(request, sm.AddSecretVersionRequest)
        if request.parent not in self.secrets:
            raise gexc.NotFound(f"Secret [{request.parent}] not found")
        versions = self.secrets[request.parent]
        v = sm.SecretVersion(
            name=f"{request.parent}/versions/{len(versions) + 1}",
            state=sm.SecretVersion.State.ENABLED,
            create_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        )
        versions.append((v, request.payload))
        return v

    def _get_secret(self, request: Any) -> Any:
        assert isinstance(request, sm.GetSecretRequest)
        if request.name not in self.secrets:
            raise gexc.NotFound(f"Secret [{request.name}] not found")
        return sm.Secret(name=request.name)

    def _create_secret(self, request: Any) -> Any:
        assert isinstance(request, sm.CreateSecretRequest)
        name = f"{request.parent}/secrets/{request.secret_id}"
        if name in self.secrets:
            raise gexc.AlreadyExists(f"Secret [{name}] already exists")
        self.secrets[name] = []
        return sm.Secret(name=name, replication=request.secret.replication)


@pytest.fixture
def fake() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def store(fake: FakeTransport) -> SecretManagerStore:
    client = sm.SecretManagerServiceClient(transport=fake)
    return SecretManagerStore(PROJECT, client=client, retry=None, timeout=5.0)


def add(store: SecretManagerStore, name: str, value: bytes) -> int:
    try:
        return store.add_version(name, SecretValue(value)).version
    except SecretNotFound:
        store.create(name)
        return store.add_version(name, SecretValue(value)).version


def test_add_creates_then_adds_with_the_real_request_types(
    store: SecretManagerStore, fake: FakeTransport
) -> None:
    assert add(store, "openai", VALUE) == 1
    methods = [m for m, _, _ in fake.calls]
    assert methods == ["add_secret_version", "create_secret", "add_secret_version"]
    _, create, _ = fake.calls[1]
    assert create.parent == "projects/acme-ml" and create.secret_id == "openai"
    assert "automatic" in create.secret.replication
    _, added, kwargs = fake.calls[2]
    assert added.parent == "projects/acme-ml/secrets/openai"
    assert added.payload.data == VALUE
    import google_crc32c

    assert added.payload.data_crc32c == google_crc32c.value(VALUE)
    assert kwargs["timeout"] == 5.0


def test_access_latest_and_a_number(store: SecretManagerStore, fake: FakeTransport) -> None:
    add(store, "openai", b"one")
    add(store, "openai", b"two")
    meta, value = store.access("openai", "latest")
    assert (meta.version, value.reveal()) == (2, b"two")
    assert fake.calls[-1][1].name == "projects/acme-ml/secrets/openai/versions/latest"
    assert store.access("openai", 1)[1].reveal() == b"one"
    assert fake.calls[-1][1].name == "projects/acme-ml/secrets/openai/versions/1"
    with pytest.raises(SecretNotFound, match="version 9 of secret 'openai'"):
        store.access("openai", 9)


def test_list_walks_the_pages_of_secrets_and_versions(store: SecretManagerStore) -> None:
    add(store, "b", b"x")
    add(store, "a", b"x")
    add(store, "a", b"y")
    infos = store.list_secrets()
    assert [i.name for i in infos] == ["a", "b"]
    assert [v.version for v in infos[0].versions] == [1, 2]
    assert infos[0].latest == 2
    assert infos[0].versions[0].state == "enabled"
    assert infos[0].versions[0].created == "2026-01-02T03:04:05.000000Z"


def test_a_corrupted_payload_is_caught_by_its_checksum(
    store: SecretManagerStore, fake: FakeTransport
) -> None:
    add(store, "a", b"x")
    _, payload = fake.secrets["projects/acme-ml/secrets/a"][0]
    payload.data_crc32c = 1
    with pytest.raises(TransientError, match="checksum"):
        store.access("a", 1)


@pytest.mark.parametrize(
    ("error", "mapped"),
    [
        (gexc.PermissionDenied("Permission 'secretmanager.versions.add' denied"), PermissionDenied),
        (gexc.ServiceUnavailable("try again"), TransientError),
        (gexc.TooManyRequests("quota"), TransientError),
        (gexc.FailedPrecondition("version is disabled"), PermanentError),
        (gexc.InvalidArgument(f"bad payload {VALUE!r} {VALUE.decode()}"), PermanentError),
    ],
)
def test_sdk_errors_are_mapped_and_never_carry_the_value(
    store: SecretManagerStore, fake: FakeTransport, error: Exception, mapped: type
) -> None:
    add(store, "a", b"seed")
    fake.fail["add_secret_version"] = error
    del error  # this frame's locals are in the captured traceback below
    try:
        store.add_version("a", SecretValue(VALUE))
    except Exception as exc:
        assert type(exc) is mapped
        assert not isinstance(exc, gexc.GoogleAPICallError)
        assert exc.__context__ is None and exc.__cause__ is None  # no SDK frames chained
        text = [str(exc), repr(exc), traceback.format_exc()]
        text += traceback.TracebackException.from_exception(exc, capture_locals=True).format()
        for t in text:
            assert VALUE.decode() not in t and repr(VALUE) not in t
    else:
        pytest.fail("no error")


def test_secrets_facade_authorizes_before_the_api_is_called(
    project_file: Path, store: SecretManagerStore, fake: FakeTransport
) -> None:
    add(store, "openai", VALUE)
    calls = len(fake.calls)
    denied = open_secrets(project_file, "training", store)
    with pytest.raises(PermissionDenied, match=r"secretmanager.versions.access"):
        denied.get("openai")
    with pytest.raises(PermissionDenied, match=r"secretmanager.secrets.list"):
        denied.list()
    assert len(fake.calls) == calls  # denied locally: Secret Manager never asked
    team = open_secrets(project_file, "alice@acme.com", store)
    assert team.get("openai").reveal() == VALUE
    assert [i.name for i in team.list()] == ["openai"]


def test_version_states(store: SecretManagerStore, fake: FakeTransport) -> None:
    add(store, "a", b"x")
    assert store.set_state("a", 1, "disabled").state == "disabled"
    assert fake.calls[-1][1].name == "projects/acme-ml/secrets/a/versions/1"
    assert store.set_state("a", 1, "enabled").state == "enabled"
    assert store.set_state("a", 1, "destroyed").state == "destroyed"
    assert [m for m, _, _ in fake.calls[-3:]] == [
        "disable_secret_version",
        "enable_secret_version",
        "destroy_secret_version",
    ]
    with pytest.raises(SecretNotFound, match="version 4 of secret 'a'"):
        store.set_state("a", 4, "disabled")


def test_a_dry_run_set_reads_whether_the_secret_exists_and_sends_nothing_else(
    project_file: Path, store: SecretManagerStore, fake: FakeTransport
) -> None:
    """`secrets set --dry-run` on Secret Manager: one metadata read; the create and the new
    version are shown in REST form with what the real requests then carry, never the value."""
    from mlplane.apis.request import DryRunLog

    alice = open_secrets(project_file, "alice@acme.com", store)
    log = DryRunLog("user:alice@acme.com")
    alice.rehearse_set("openai", SecretValue(VALUE), log)
    assert [m for m, _, _ in fake.calls] == ["get_secret"]
    create, add_version = log.requests
    assert "sk-gcp" not in log.render() and str(len(VALUE)) in log.render()
    fake.calls.clear()
    alice.set("openai", SecretValue(VALUE))  # for real: what the dry run named
    real_create = next(r for m, r, _ in fake.calls if m == "create_secret")
    real_add = [r for m, r, _ in fake.calls if m == "add_secret_version"][-1]
    host = "https://secretmanager.googleapis.com/v1/"
    assert create.url == f"{host}{real_create.parent}/secrets?secretId={real_create.secret_id}"
    assert "automatic" in real_create.secret.replication and create.body == {
        "replication": {"automatic": {}}
    }
    assert add_version.url == f"{host}{real_add.parent}:addVersion"
    assert set(add_version.body["payload"]) == {"data", "dataCrc32c"}  # as the real payload
    assert real_add.payload.data_crc32c
    fake.calls.clear()
    log = DryRunLog()
    alice.rehearse_set("openai", SecretValue(b"next"), log)
    [only] = log.requests
    assert only.url.endswith("/secrets/openai:addVersion")
    assert [m for m, _, _ in fake.calls] == ["get_secret"]
    denied = open_secrets(project_file, "training", store)
    with pytest.raises(PermissionDenied, match=r"secretmanager\.versions\.add"):
        denied.rehearse_set("openai", SecretValue(b"x"), DryRunLog())
