"""Provider contract: the waiting helper, error mapping into mlplane's taxonomy, the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_provider import FakeClock, FakeCloud, FakeProvider, FakeProviderWithWait, bundle

from mlplane.errors import ConfigError, PermanentError, PermissionDenied, TransientError
from mlplane.model.compute import ResourceKey, Verb
from mlplane.providers.base import (
    Operation,
    OperationError,
    OperationStatus,
    PollPolicy,
    ProviderContext,
    capabilities,
    wait_for_operation,
)
from mlplane.providers.errors import (
    AlreadyExists,
    FingerprintConflict,
    InvalidRequest,
    NotFound,
    OperationFailed,
    OperationTimeout,
    ProviderUnavailable,
    ResourceInUse,
    error_for_status,
)
from mlplane.providers.registry import ProviderRegistry

KEY = ResourceKey("healthCheck", "hc")


class ScriptedPoller:
    """Returns PENDING, RUNNING, ..., then DONE (with `error`) after `n` polls."""

    def __init__(self, n: int, error: OperationError | None = None) -> None:
        self.n, self.error, self.polls = n, error, 0

    def get_operation(self, op: Operation) -> Operation:
        self.polls += 1
        if self.polls < self.n:
            return Operation(op.name, op.target, op.verb, OperationStatus.RUNNING)
        return Operation(op.name, op.target, op.verb, OperationStatus.DONE, self.error)


def pending() -> Operation:
    return Operation("operation-1", KEY, Verb.CREATE)


def test_wait_polls_with_backoff_until_done() -> None:
    clock, poller = FakeClock(), ScriptedPoller(5)
    op = wait_for_operation(
        pending(), "create hc", 60, poller=poller, clock=clock,
        policy=PollPolicy(initial=0.1, factor=2.0, maximum=0.5),
    )  # fmt: skip
    assert op.done and poller.polls == 5
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_wait_times_out_as_a_transient_error() -> None:
    clock = FakeClock()
    with pytest.raises(OperationTimeout, match="not done after 3s") as info:
        wait_for_operation(pending(), "create hc", 3, poller=ScriptedPoller(10**6), clock=clock)
    assert isinstance(info.value, TransientError)
    assert clock.now - 1000.0 == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OperationError("ALREADY_EXISTS", "exists", 409), AlreadyExists),
        (OperationError("RESOURCE_IN_USE_BY_ANOTHER_RESOURCE", "used", 400), ResourceInUse),
        (OperationError("RESOURCE_NOT_READY", "later", 400), ProviderUnavailable),
        (OperationError("INTERNAL_ERROR", "boom", 503), ProviderUnavailable),
        (OperationError("INVALID_FIELD_VALUE", "bad", 400), InvalidRequest),
        (OperationError("SOMETHING", "odd", None), OperationFailed),
    ],
)
def test_done_with_error_raises_the_mapped_error(error: OperationError, expected: type) -> None:
    with pytest.raises(expected, match="create hc failed"):
        wait_for_operation(
            pending(), "create hc", 60, poller=ScriptedPoller(1, error), clock=FakeClock()
        )


@pytest.mark.parametrize(
    ("status", "reason", "expected", "family"),
    [
        (404, "notFound", NotFound, PermanentError),
        (409, "alreadyExists", AlreadyExists, PermanentError),
        (412, "conditionNotMet", FingerprintConflict, TransientError),
        (400, "resourceInUseByAnotherResource", ResourceInUse, TransientError),
        (429, "rateLimitExceeded", ProviderUnavailable, TransientError),
        (503, "", ProviderUnavailable, TransientError),
        (400, "invalid", InvalidRequest, PermanentError),
        (403, "forbidden", PermissionDenied, PermissionDenied),
    ],
)
def test_http_status_mapping(status: int, reason: str, expected: type, family: type) -> None:
    err = error_for_status(status, "msg", reason=reason, key=KEY, used_by="urlMap/m")
    assert type(err) is expected and isinstance(err, family)
    assert "healthCheck/hc" in str(err)
    if isinstance(err, ResourceInUse):
        assert err.used_by == "urlMap/m"


def test_server_side_wait_capability_is_used_when_present(tmp_path: Path) -> None:
    cloud = FakeCloud(tmp_path / "c.db", polls_to_done=3)
    plain, waiting = FakeProvider(cloud, "healthCheck"), FakeProviderWithWait(cloud, "healthCheck")
    assert capabilities(plain) == frozenset()
    assert capabilities(waiting) == {"operation-wait"}
    hc = bundle().health_check
    op = waiting.create(hc, request_id="00000000-0000-4000-8000-000000000001")
    clock = FakeClock()
    assert wait_for_operation(op, "create", 60, poller=waiting, clock=clock).done
    assert clock.sleeps == []  # no client-side polling sleeps
    assert waiting.get(hc.key).spec == hc


def test_registry_resolves_lazily_and_names_what_is_missing() -> None:
    reg = ProviderRegistry({("fake", "healthCheck"): "fake_provider:FakeProvider"})
    assert reg.providers() == ("fake",) and reg.kinds("fake") == ("healthCheck",)
    factory = reg.resolve("fake", "healthCheck")
    assert factory is FakeProvider
    with pytest.raises(ConfigError, match="kind not implemented"):
        reg.resolve("fake", "urlMap")
    with pytest.raises(ConfigError, match="unknown kind"):
        reg.register("fake", "bucket", "x:y")
    reg.register("fake", "urlMap", lambda ctx: FakeProvider(FakeCloud(Path(ctx.project)), "urlMap"))
    assert reg.kinds("fake") == ("healthCheck", "urlMap")


def test_provider_set_names_a_missing_kind(tmp_path: Path) -> None:
    reg = ProviderRegistry()
    cloud = FakeCloud(tmp_path / "c.db")
    reg.register("fake", "healthCheck", lambda ctx: FakeProvider(cloud, "healthCheck"))
    providers = reg.build("fake", ProviderContext(project="p"))
    assert isinstance(providers.for_kind("healthCheck"), FakeProvider)
    with pytest.raises(ConfigError, match="no implementation of resource kind 'urlMap'"):
        providers.for_kind("urlMap")


def test_every_builtin_entry_names_a_provider_of_its_kind() -> None:
    from mlplane.model.compute import SPEC_TYPES
    from mlplane.providers.base import ResourceProvider
    from mlplane.providers.registry import BUILTIN, REGISTRY

    for (provider, kind), target in BUILTIN.items():
        assert kind in SPEC_TYPES, target
        factory = REGISTRY.resolve(provider, kind)
        assert isinstance(factory, type) and issubclass(factory, ResourceProvider), target
        assert getattr(factory, "KIND", kind) == kind, target
