"""Rehearsal (`--dry-run` through the engine): the apply's authorization and plan, each step's
provider call made once in plan order on providers that record instead of sending, and nothing
locked, journaled, recorded or waited for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_provider import (
    World,
    bootstrap_state,
    deploy_state,
    make_world,
    principal,
    retire_state,
)

from mlplane.engine.rehearsal import LATER_FINGERPRINT, NotRecording, describe
from mlplane.engine.steps import Op
from mlplane.errors import PermissionDenied
from mlplane.model.compute import ResourceKey, ResourceSpec, Verb
from mlplane.providers.base import Observed, Operation, OperationStatus, ResourceProvider
from mlplane.providers.registry import ProviderSet

URL_MAP = ResourceKey("urlMap", "mlplane-urlmap")
Call = tuple[str, ResourceKey, ResourceSpec | None, str | None]


class Recording(ResourceProvider[ResourceSpec]):
    """Reads from the fake cloud; mutations recorded and answered DONE (a dry-run client's
    behaviour, at the provider level)."""

    def __init__(self, inner: ResourceProvider[Any], calls: list[Call]) -> None:
        self.inner = inner
        self.calls = calls

    def _done(self, key: ResourceKey, verb: Verb) -> Operation:
        return Operation("dry-run", key, verb, OperationStatus.DONE)

    def create(self, spec: ResourceSpec, *, request_id: str) -> Operation:
        self.calls.append(("create", spec.key, spec, None))
        return self._done(spec.key, Verb.CREATE)

    def update(self, spec: ResourceSpec, *, fingerprint: str | None, request_id: str) -> Operation:
        self.calls.append(("update", spec.key, spec, fingerprint))
        return self._done(spec.key, Verb.UPDATE)

    def delete(self, key: ResourceKey, *, request_id: str) -> Operation:
        self.calls.append(("delete", key, None, None))
        return self._done(key, Verb.DELETE)

    def get(self, key: ResourceKey) -> Observed[ResourceSpec]:
        found: Observed[ResourceSpec] = self.inner.get(key)
        return found

    def list(self) -> list[Observed[ResourceSpec]]:
        return list(self.inner.list())

    def get_operation(self, op: Operation) -> Operation:
        raise AssertionError("a rehearsal waits for no operation")


def rehearsing(w: World, calls: list[Call]) -> Any:
    from mlplane.engine import Engine

    by_kind = {k: Recording(p, calls) for k, p in w.engine.providers.by_kind.items()}
    providers = ProviderSet("fake", by_kind, records_only=True)
    return Engine(w.store, providers, w.authorizer, w.engine.settings, clock=w.clock)


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path)
    w.apply(bootstrap_state()).raise_for_failures()
    w.cloud.calls.clear()
    return w


def unchanged(w: World) -> tuple[object, ...]:
    return (w.cloud.resources(), w.store.load(), len(w.engine.journal.entries()))


def test_an_engine_that_would_send_refuses_to_rehearse(world: World) -> None:
    assert world.engine.providers.records_only is False
    with pytest.raises(NotRecording, match="dry-run client"):
        world.engine.rehearse(deploy_state(), principal())
    assert world.cloud.calls == []


def test_each_step_is_called_once_in_plan_order_and_nothing_is_recorded(world: World) -> None:
    before = unchanged(world)
    calls: list[Call] = []
    notes: list[str] = []
    r = rehearsing(world, calls).rehearse(deploy_state(), principal(), note=notes.append)
    steps = r.plan.executable
    assert [(c[0], c[1]) for c in calls] == [(str(s.op), s.key) for s in steps]
    assert notes == [describe(s) for s in steps]
    [update] = [c for c in calls if c[0] == "update" and c[1] == URL_MAP]
    assert update[3] == world.cloud.get(URL_MAP).fingerprint  # read live, as apply reads it
    assert unchanged(world) == before
    assert not [c for c in world.cloud.calls if c[0] in ("create", "update", "delete")]


def test_a_rehearsal_after_another_plans_on_what_the_first_would_leave(world: World) -> None:
    calls: list[Call] = []
    engine = rehearsing(world, calls)
    first = engine.rehearse(deploy_state(), principal())
    created = {c[1] for c in calls if c[0] == "create"}
    calls.clear()
    world.cloud.calls.clear()
    second = engine.rehearse(retire_state(), principal(), after=first)
    assert {c[1] for c in calls if c[0] == "delete"} == created  # they exist in the overlay
    [update] = [c for c in calls if c[0] == "update" and c[1] == URL_MAP]
    assert update[3] == LATER_FINGERPRINT  # the first rehearsal changed it: not known yet
    assert not [c for c in world.cloud.calls if c[1] in {k.name for k in created}]
    assert all(s.op is not Op.CREATE for s in second.plan.executable)
    assert second.depth == first.depth + 1


def test_a_denied_rehearsal_calls_nothing(tmp_path: Path) -> None:
    w = make_world(tmp_path, deny={"compute.instanceGroupManagers.create"})
    w.apply(bootstrap_state()).raise_for_failures()
    w.cloud.calls.clear()
    calls: list[Call] = []
    with pytest.raises(PermissionDenied, match=r"compute\.instanceGroupManagers\.create"):
        rehearsing(w, calls).rehearse(deploy_state(), principal())
    assert calls == [] and w.cloud.calls == []
