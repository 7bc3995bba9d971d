"""Apply: pending operations, parallelism, 412 re-application of intents, transient and
permanent errors, resourceInUse, authorization before any provider call, adoption, drift."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_provider import (
    ENDPOINTS,
    SERVING_SA,
    FakeCloud,
    Fault,
    World,
    bootstrap_state,
    bundle,
    deploy_state,
    make_world,
    principal,
    retire_state,
)

from mlplane.engine import Action, DesiredState, IntentStatus, PlanError, StackSpec, StepStatus
from mlplane.errors import PermanentError, PermissionDenied
from mlplane.model.compute import FRONTEND_STACK, ResourceKey, UrlMap, detach, route_to
from mlplane.providers.base import SYSTEM_CLOCK
from mlplane.providers.errors import ResourceInUse

URL_MAP = ResourceKey("urlMap", "mlplane-urlmap")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path, polls_to_done=3)
    w.apply(bootstrap_state()).raise_for_failures()
    w.cloud.calls.clear()
    yield w
    w.close()


def routes(cloud: FakeCloud) -> dict[str, tuple[str, ...]]:
    url_map = cloud.resources()[URL_MAP]
    assert isinstance(url_map, UrlMap)
    return {r.prefix or "": r.backend_services() for r in url_map.path_matchers[0].route_rules}


def assert_consistent(w: World) -> None:
    """The store records exactly what the cloud has; nothing is left open in the journal."""
    recorded = {k: r.spec for k, r in w.store.load().items()}
    assert recorded == w.cloud.resources()
    assert w.engine.journal.open_intents(["serving/sentiment/r1", FRONTEND_STACK]) == []
    creates: dict[tuple[str, str], int] = {}
    for kind, name, verb in w.cloud.effects():
        if verb == "create":
            creates[(kind, name)] = creates.get((kind, name), 0) + 1
            assert creates[(kind, name)] == 1, f"{kind}/{name} created twice"
        elif verb == "delete":
            creates[(kind, name)] = 0


def test_deploy_with_pending_operations_converges(world: World) -> None:
    report = world.apply(deploy_state())
    assert report.ok, report.render()
    assert {r.status for r in report.results} == {StepStatus.DONE}
    b = bundle()
    assert {r.key for r in b.resources} <= set(world.cloud.resources())
    assert routes(world.cloud) == {"/v1/models/sentiment/": (b.backend_service.link,)}
    assert_consistent(world)
    journal = world.engine.journal.entries(report.run_id)
    assert len(journal) == 7 and {i.status for i in journal} == {IntentStatus.DONE}
    assert all(i.operation is not None for i in journal)
    assert world.engine.plan(deploy_state()).empty


def test_independent_steps_overlap(tmp_path: Path) -> None:
    w = make_world(tmp_path, op_delay=0.1, wait=True, clock=SYSTEM_CLOCK)
    w.apply(bootstrap_state()).raise_for_failures()
    start = time.monotonic()
    w.apply(deploy_state()).raise_for_failures()
    elapsed = time.monotonic() - start
    ops = {(k, v): (s, f) for k, n, v, _, s, f in w.cloud.operations() if n.startswith("sentiment")}
    (t0, t1), (h0, h1) = ops[("instanceTemplate", "create")], ops[("healthCheck", "create")]
    assert t0 < h1 and h0 < t1  # template and health check were in flight together
    # 7 operations of 0.1 s; the longest chain (hc -> mig -> bes -> url map) is 0.4 s.
    assert elapsed < 0.6, elapsed
    w.close()


def test_fingerprint_conflict_reapplies_the_intent_not_the_stale_object(world: World) -> None:
    other = bundle("ranker", "r1")
    world.apply(DesiredState.of(StackSpec(other.stack, other.resources))).raise_for_failures()

    def competitor(cloud: FakeCloud, key: ResourceKey) -> None:
        """Between our get and our update, someone else adds a route (new fingerprint)."""
        if key != URL_MAP or cloud.before_update is None:
            return
        cloud.before_update = None
        live = cloud.get(key)
        theirs = live.spec.with_changes([route_to("ranker", [(other, 100)])])
        cloud.update(theirs, live.fingerprint, "00000000-0000-4000-8000-00000000beef")

    world.cloud.before_update = competitor
    report = world.apply(deploy_state())
    assert report.ok, report.render()
    assert world.cloud.conflicts() == 1
    assert set(routes(world.cloud)) == {"/v1/models/sentiment/", "/v1/models/ranker/"}
    assert world.store.get(URL_MAP).spec == world.cloud.resources()[URL_MAP]  # type: ignore[union-attr]


def test_injected_412s_are_retried_with_backoff(world: World) -> None:
    world.cloud.faults.append(Fault("update", "412", kind="urlMap", times=3))
    before = len(world.clock.sleeps)
    assert world.apply(deploy_state()).ok
    assert "/v1/models/sentiment/" in routes(world.cloud)
    assert len([s for s in world.clock.sleeps[before:] if s >= 0.1]) >= 3


def test_transient_503_is_retried_with_the_same_request(world: World) -> None:
    world.cloud.faults.append(Fault("create", "503", kind="instanceTemplate", times=2))
    world.cloud.faults.append(Fault("create", "op_503", kind="healthCheck", times=1))
    report = world.apply(deploy_state())
    assert report.ok, report.render()
    assert_consistent(world)
    creates = [c for c in world.cloud.calls if c[:2] == ("create", "healthCheck")]
    assert len(creates) == 2  # the operation failed (503), so a new request was sent once


def test_transient_budget_exhausted_is_reported_as_permanent(world: World) -> None:
    world.cloud.faults.append(Fault("create", "503", kind="instanceTemplate", times=100))
    report = world.apply(deploy_state())
    failed = {r.key.kind: r.error for r in report.failed}
    assert list(failed) == ["instanceTemplate"]
    assert "gave up after 8 retries" in (failed["instanceTemplate"] or "")


def test_permanent_error_stops_dependants_and_reports(world: World) -> None:
    world.cloud.faults.append(Fault("create", "op_permanent", kind="instanceGroupManager"))
    report = world.apply(deploy_state())
    status = {r.key.kind: r.status for r in report.results}
    assert status["instanceGroupManager"] is StepStatus.FAILED
    assert status["autoscaler"] is StepStatus.SKIPPED
    assert status["backendService"] is StepStatus.SKIPPED
    assert status["urlMap"] is StepStatus.SKIPPED
    assert status["instanceTemplate"] is status["healthCheck"] is StepStatus.DONE
    assert status["endpointsConfig"] is StepStatus.DONE  # independent branch carried on
    with pytest.raises(PermanentError, match=r"instanceGroupManager/sentiment-r1-mig.*3 depend"):
        report.raise_for_failures()
    failed = [i for i in world.engine.journal.entries(report.run_id) if i.status == "failed"]
    assert [i.key.kind for i in failed] == ["instanceGroupManager"]
    assert_consistent(world)
    # The fault is gone: a re-run finishes the job.
    assert world.apply(deploy_state()).ok
    assert_consistent(world)


def test_delete_in_use_is_retried_then_reported(world: World) -> None:
    world.apply(deploy_state()).raise_for_failures()
    world.cloud.faults.append(Fault("delete", "in_use", kind="healthCheck", times=2))
    assert world.apply(retire_state()).ok
    assert bundle().health_check.key not in world.cloud.resources()

    world.apply(deploy_state()).raise_for_failures()
    world.cloud.faults.append(Fault("delete", "in_use", kind="instanceTemplate", times=100))
    report = world.apply(retire_state())
    [failed] = report.failed
    assert failed.key == bundle().template.key
    assert "still in use by urlMap/someone-else after 6 retries" in (failed.error or "")
    assert world.store.get(failed.key) is not None  # still recorded: it still exists
    assert_consistent(world)


def test_provider_refuses_to_delete_a_referenced_resource(world: World) -> None:
    world.apply(deploy_state()).raise_for_failures()
    with pytest.raises(ResourceInUse) as info:
        world.cloud.delete(bundle().health_check.key, "00000000-0000-4000-8000-000000000002")
    assert info.value.used_by.startswith(("instanceGroupManager/", "backendService/"))


def test_permission_denied_before_any_provider_call(tmp_path: Path) -> None:
    w = make_world(tmp_path, deny={"compute.instanceGroupManagers.create"})
    w.apply(bootstrap_state()).raise_for_failures()
    w.cloud.calls.clear()
    rows_before = w.store.load()
    with pytest.raises(PermissionDenied) as info:
        w.apply(deploy_state())
    assert "missing compute.instanceGroupManagers.create" in str(info.value)
    assert info.value.decision is not None and not info.value.decision.allowed  # type: ignore[attr-defined]
    assert w.cloud.calls == []  # not even a get
    assert len(w.engine.journal.entries()) == 6  # the bootstrap's only
    assert w.store.load() == rows_before
    w.close()


def test_act_as_denial_names_the_service_account(tmp_path: Path) -> None:
    w = make_world(tmp_path, deny={"iam.serviceAccounts.actAs"})
    w.apply(bootstrap_state()).raise_for_failures()
    expected = f"on serviceAccount:{SERVING_SA}: missing iam.serviceAccounts.actAs"
    with pytest.raises(PermissionDenied, match=re.escape(expected)):
        w.apply(deploy_state())
    assert bundle().template.key not in w.cloud.resources()
    w.close()


def test_identical_unrecorded_resource_is_adopted_not_recreated(world: World) -> None:
    hc = bundle().health_check
    world.cloud.put(hc)
    report = world.apply(deploy_state())
    assert report.ok
    assert ("create", "healthCheck", hc.name) not in world.cloud.calls
    assert world.store.get(hc.key) is not None
    assert_consistent(world)


def test_different_unrecorded_resource_is_refused(world: World) -> None:
    hc = bundle().health_check
    world.cloud.put(hc.model_copy(update={"check_interval_sec": 30}))
    with pytest.raises(PlanError, match="not created by mlplane"):
        world.apply(deploy_state())


def test_drift_is_repaired_and_passive_teardown_needs_the_flag(world: World) -> None:
    world.apply(deploy_state()).raise_for_failures()
    world.cloud._conn().execute("DELETE FROM resources WHERE kind = 'autoscaler'")
    report = world.apply(deploy_state())
    assert [r.step_id for r in report.results if r.status is StepStatus.DONE] == [
        "create:autoscaler/sentiment-r1-as"
    ]
    world.apply(retire_state()).raise_for_failures()
    with pytest.raises(PlanError, match="never delete a passive"):
        world.apply(DesiredState.of(StackSpec(FRONTEND_STACK)))
    endpoints = ResourceKey("endpointsService", ENDPOINTS)
    assert endpoints in world.cloud.resources() and world.store.get(endpoints) is not None
    world.apply(DesiredState.of(StackSpec(FRONTEND_STACK)), allow_passive=True).raise_for_failures()
    assert world.cloud.resources() == {} and world.store.load() == {}
    # The Endpoints service went too (it was part of the stack): deleted once, by this teardown.
    history = [e for e in world.cloud.effects() if e[:2] == ("endpointsService", ENDPOINTS)]
    assert history == [
        ("endpointsService", ENDPOINTS, "create"),
        ("endpointsService", ENDPOINTS, "delete"),
    ]


def test_route_removed_outside_mlplane_is_restored(world: World) -> None:
    world.apply(deploy_state()).raise_for_failures()
    live = world.cloud.get(URL_MAP)
    bare = live.spec.with_changes([detach(bundle())])
    world.cloud.update(bare, live.fingerprint, "00000000-0000-4000-8000-00000000cafe")
    assert routes(world.cloud) == {}
    p = world.engine.plan(deploy_state())
    assert [s.id for s in p.executable] == ["update:urlMap/mlplane-urlmap"]
    assert world.apply(deploy_state()).ok
    assert list(routes(world.cloud)) == ["/v1/models/sentiment/"]
    assert_consistent(world)


def test_preview_checks_read_permissions_before_observing(tmp_path: Path) -> None:
    w = make_world(tmp_path, deny={"compute.autoscalers.get"})
    w.apply(bootstrap_state()).raise_for_failures()
    w.cloud.calls.clear()
    with pytest.raises(PermissionDenied, match=re.escape("missing compute.autoscalers.get")):
        w.engine.plan(deploy_state(), principal=principal())
    assert w.cloud.calls == []
    assert w.engine.plan(deploy_state()).count(Action.CREATE) == 5  # no principal: no check
    w.close()


def test_the_journal_keeps_its_newest_history_and_every_open_intent(world: World) -> None:
    """Closed intents beyond `journal_keep` rows are dropped after an apply; open ones stay."""
    from dataclasses import replace

    world.engine.settings = replace(world.engine.settings, journal_keep=10)
    with world.store.transaction() as conn:  # an intent a dead process left open, long ago
        conn.execute(
            "INSERT INTO journal (run_id, stack, owner, step_id, kind, name, op, request_id, "
            "payload, principal, status, created_at) VALUES "
            "('old', 'svc/old', 'o', 's', 'healthCheck', 'old-hc', 'create', 'r', "
            "'{\"spec\": null, \"declared\": null, \"changes\": []}', 'p', 'open', 0)"
        )
        [(open_id,)] = conn.execute("SELECT id FROM journal WHERE status = 'open'").fetchall()
    for _ in range(3):
        world.apply(deploy_state()).raise_for_failures()
        world.apply(retire_state()).raise_for_failures()
    with world.store.transaction() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM journal WHERE status != 'open'")]
        still_open = [r[0] for r in conn.execute("SELECT id FROM journal WHERE status = 'open'")]
        newest = conn.execute("SELECT MAX(id) FROM journal").fetchone()[0]
    assert still_open == [open_id]
    assert ids and min(ids) > newest - 10 and len(ids) <= 10
