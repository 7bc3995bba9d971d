"""Plans: create/update/replace/delete/noop, dependency order, reverse deletes, protections."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from fake_provider import ENDPOINTS, bootstrap_state, bundle, deploy_state, retire_state

from mlplane.engine import Action, DesiredState, Op, Plan, PlanError, StackSpec
from mlplane.engine.plan import plan
from mlplane.engine.state import RecordedResource
from mlplane.model.compute import (
    FRONTEND_STACK,
    AutoscalingPolicy,
    InstanceGroupManager,
    InstanceTemplate,
    ResourceKey,
    ResourceSpec,
    TargetHttpProxy,
    frontend,
    route_to,
)
from mlplane.providers.base import Observed

Recorded = dict[ResourceKey, RecordedResource]


def record(stack: str, specs: Iterable[ResourceSpec], into: Recorded | None = None) -> Recorded:
    out = dict(into or {})
    out.update({s.key: RecordedResource(s.key, stack, s, 1) for s in specs})
    return out


def booted() -> Recorded:
    return record(FRONTEND_STACK, frontend(endpoints_service=ENDPOINTS).resources)


def deployed(*revs: tuple[str, str]) -> Recorded:
    """Recorded state after bootstrap and the given revisions, with their routes."""
    rec = booted()
    fe = frontend(endpoints_service=ENDPOINTS)
    url_map = fe.url_map
    for service, rev in revs:
        b = bundle(service, rev)
        rec = record(b.stack, b.resources, rec)
        url_map = url_map.with_changes([route_to(service, [(b, 100)])])
    return record(FRONTEND_STACK, [url_map], rec)


def ids(p: Plan) -> list[str]:
    return [s.id for s in p.executable]


def before(p: Plan, first: str, then: str) -> bool:
    """`then` (transitively) depends on `first`."""
    seen, todo = set(), [then]
    while todo:
        for dep in p.step(todo.pop()).depends_on:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return first in seen


def test_new_revision_creates_in_dependency_order() -> None:
    p = plan(deploy_state(), booted())
    b = bundle()
    assert p.count(Action.CREATE) == 5 and p.count(Action.UPDATE) == 2  # route + API paths
    tmpl, hc, mig = (
        f"create:{r.key}" for r in (b.template, b.health_check, b.instance_group_manager)
    )
    asc, bes = f"create:{b.autoscaler.key}", f"create:{b.backend_service.key}"
    route = "update:urlMap/mlplane-urlmap"
    assert set(p.step(mig).depends_on) == {tmpl, hc}
    assert p.step(asc).depends_on == (mig,)
    assert set(p.step(bes).depends_on) == {hc, mig}
    assert p.step(route).depends_on == (bes,)
    assert p.step(route).stack == FRONTEND_STACK and p.step(route).scope == b.stack
    order = ids(p)
    assert order.index(tmpl) < order.index(mig) < order.index(bes) < order.index(route)
    assert not p.step(tmpl).depends_on and not p.step(hc).depends_on  # can run in parallel


def test_applied_state_plans_no_changes() -> None:
    rec = deployed(("sentiment", "r1"))
    p = plan(deploy_state(), record(FRONTEND_STACK, [_with_api_paths()], rec))
    assert p.empty and p.render() == "no changes"
    assert {s.action for s in p.steps} == {Action.NOOP}


def _with_api_paths() -> ResourceSpec:
    from mlplane.model.compute import api_paths

    cfg = frontend(endpoints_service=ENDPOINTS).endpoints_config
    assert cfg is not None
    return cfg.with_changes([api_paths("sentiment", ENDPOINTS)])


def test_dynamic_change_is_an_update_with_its_diff() -> None:
    b = bundle()
    rec = deployed(("sentiment", "r1"))
    bigger = b.autoscaler.model_copy(
        update={"autoscaling_policy": AutoscalingPolicy(min_num_replicas=1, max_num_replicas=9)}
    )
    resources = tuple(bigger if r.key == bigger.key else r for r in b.resources)
    p = plan(DesiredState.of(StackSpec(b.stack, resources)), rec)
    assert ids(p) == [f"update:{bigger.key}"]
    step = p.step(f"update:{bigger.key}")
    assert step.diff == ("autoscaling_policy",) and step.declared == bigger


def test_immutable_change_under_same_name_is_delete_before_create_with_cascade() -> None:
    b = bundle()
    rec = booted()
    rec = record(b.stack, b.resources, rec)  # no route: the URL map does not refer to r1
    props = b.template.properties.model_copy(update={"machine_type": "n2-standard-8"})
    tmpl = b.template.model_copy(update={"properties": props})
    resources = tuple(tmpl if r.key == tmpl.key else r for r in b.resources)
    p = plan(DesiredState.of(StackSpec(b.stack, resources)), rec)
    replaced = {s.key for s in p.executable if s.action is Action.REPLACE}
    # The MIG refers to the template, the autoscaler and backend service to the MIG.
    assert replaced == {tmpl.key, b.instance_group_manager.key, b.autoscaler.key,
                        b.backend_service.key}  # fmt: skip
    k = {r.KIND: r.key for r in b.resources}
    assert before(p, f"delete:{k['autoscaler']}", f"delete:{k['instanceGroupManager']}")
    assert before(p, f"delete:{k['backendService']}", f"delete:{k['instanceGroupManager']}")
    assert before(p, f"delete:{k['instanceGroupManager']}", f"delete:{k['instanceTemplate']}")
    assert before(p, f"delete:{k['instanceTemplate']}", f"create:{k['instanceTemplate']}")
    assert before(p, f"create:{k['instanceTemplate']}", f"create:{k['instanceGroupManager']}")
    assert before(p, f"create:{k['instanceGroupManager']}", f"create:{k['backendService']}")
    assert p.step(f"create:{tmpl.key}").strategy == "delete-before-create"
    assert "health" not in " ".join(ids(p))  # the health check is untouched


def test_replace_that_would_replace_the_passive_url_map_is_refused() -> None:
    b = bundle()
    rec = deployed(("sentiment", "r1"))
    props = b.template.properties.model_copy(update={"machine_type": "n2-standard-8"})
    tmpl = b.template.model_copy(update={"properties": props})
    resources = tuple(tmpl if r.key == tmpl.key else r for r in b.resources)
    with pytest.raises(PlanError, match=r"urlMap/mlplane-urlmap.*new name"):
        plan(DesiredState.of(StackSpec(b.stack, resources)), rec)


def test_new_name_gives_create_before_delete() -> None:
    b = bundle()
    rec = record(b.stack, b.resources, booted())
    props = b.template.properties.model_copy(update={"machine_type": "n2-standard-8"})
    tmpl2 = InstanceTemplate(name="sentiment-r1-tmpl-2", properties=props)
    mig = b.instance_group_manager.model_copy(update={"instance_template": tmpl2.link})
    resources = (b.health_check, tmpl2, mig, b.autoscaler, b.backend_service)
    p = plan(DesiredState.of(StackSpec(b.stack, resources)), rec)
    assert ids(p) == [f"create:{tmpl2.key}", f"update:{mig.key}", f"delete:{b.template.key}"]
    assert before(p, f"create:{tmpl2.key}", f"update:{mig.key}")
    assert before(p, f"update:{mig.key}", f"delete:{b.template.key}")


def test_retire_deletes_in_reverse_dependency_order_after_detaching() -> None:
    rec = record(FRONTEND_STACK, [_with_api_paths()], deployed(("sentiment", "r1")))
    p = plan(retire_state(), rec)
    b = bundle()
    k = {r.KIND: r.key for r in b.resources}
    assert p.count(Action.DELETE) == 5
    route = "update:urlMap/mlplane-urlmap"
    assert p.step(f"delete:{k['backendService']}").depends_on == (route,)
    assert before(p, f"delete:{k['autoscaler']}", f"delete:{k['instanceGroupManager']}")
    assert before(p, f"delete:{k['backendService']}", f"delete:{k['instanceGroupManager']}")
    assert before(p, f"delete:{k['instanceGroupManager']}", f"delete:{k['instanceTemplate']}")
    assert before(p, f"delete:{k['instanceGroupManager']}", f"delete:{k['healthCheck']}")
    assert before(p, f"delete:{k['backendService']}", f"delete:{k['healthCheck']}")
    step = p.step(route)
    assert step.spec is not None and b.backend_service.key not in step.spec.references()


def test_retire_without_detach_names_the_url_map() -> None:
    b = bundle()
    with pytest.raises(PlanError, match="cannot delete backendService/sentiment-r1-bes: urlMap"):
        plan(DesiredState.of(StackSpec(b.stack)), deployed(("sentiment", "r1")))


def test_lifecycle_never_deletes_passive_resources() -> None:
    with pytest.raises(PlanError, match=r"passive.*would be deleted"):
        plan(DesiredState.of(StackSpec(FRONTEND_STACK)), booted())


def test_explicit_destroy_with_flag_deletes_passive_in_reverse_order() -> None:
    p = plan(DesiredState.of(StackSpec(FRONTEND_STACK)), booted(), allow_passive=True)
    fe = frontend(endpoints_service=ENDPOINTS)
    assert p.count(Action.DELETE) == 6
    assert before(p, f"delete:{fe.forwarding_rule.key}", f"delete:{fe.proxy.key}")
    assert before(p, f"delete:{fe.proxy.key}", f"delete:{fe.url_map.key}")
    assert before(p, f"delete:{fe.url_map.key}", f"delete:{fe.default_backend.key}")
    assert fe.endpoints_config and fe.endpoints_service
    assert before(p, f"delete:{fe.endpoints_config.key}", f"delete:{fe.endpoints_service.key}")


def test_static_resources_are_never_updated_by_lifecycle() -> None:
    fe = frontend(endpoints_service=ENDPOINTS)
    proxy = TargetHttpProxy(name=fe.proxy.name, url_map="global/urlMaps/other-map")
    resources = tuple(proxy if r.key == proxy.key else r for r in fe.resources)
    with pytest.raises(PlanError, match="targetHttpProxy/mlplane-http-proxy is a passive static"):
        plan(DesiredState.of(StackSpec(FRONTEND_STACK, resources)), booted())
    with pytest.raises(PlanError, match="neither exists nor is desired"):
        plan(DesiredState.of(StackSpec(FRONTEND_STACK, resources)), booted(), {},
             allow_passive=True)  # fmt: skip


def test_changes_only_apply_to_dynamic_kinds() -> None:
    from mlplane.model.compute import DetachBackendService

    class ProxyChange(DetachBackendService):
        @property
        def target(self) -> ResourceKey:
            return ResourceKey("targetHttpProxy", "mlplane-http-proxy")

    change = ProxyChange(url_map="x", backend_service="global/backendServices/b")
    with pytest.raises(PlanError, match="static: changes apply to dynamic kinds"):
        plan(DesiredState.of(StackSpec("serving/x/r1", (), (change,))), booted())


def test_rebootstrap_keeps_routes_added_by_revisions() -> None:
    p = plan(bootstrap_state(), deployed(("sentiment", "r1"), ("ranker", "r2")))
    assert p.empty


def test_a_resource_belongs_to_one_stack() -> None:
    b = bundle()
    rec = record(b.stack, b.resources, booted())
    with pytest.raises(PlanError, match="belongs to stack 'serving/sentiment/r1'"):
        plan(DesiredState.of(StackSpec("serving/other/r1", (b.health_check,))), rec)
    with pytest.raises(PlanError, match="listed twice"):
        plan(DesiredState.of(StackSpec(b.stack, (b.health_check, b.health_check))), booted())


def test_observed_state_drives_recreate_adopt_and_forget() -> None:
    b = bundle()
    rec = record(b.stack, b.resources, booted())
    # The MIG vanished at the provider: re-create it. The template is gone and unwanted: forget it.
    resources = tuple(r for r in b.resources if r.key != b.template.key)
    mig = b.instance_group_manager.model_copy(
        update={"instance_template": "global/instanceTemplates/t0"}
    )
    resources = tuple(mig if r.key == mig.key else r for r in resources)
    observed: dict[ResourceKey, Observed[ResourceSpec] | None] = {
        b.instance_group_manager.key: None,
        b.template.key: None,
        ResourceKey("instanceTemplate", "t0"): Observed(
            b.template.model_copy(update={"name": "t0"})
        ),
    }
    p = plan(DesiredState.of(StackSpec(b.stack, resources)), rec, observed)
    assert p.step(f"create:{mig.key}").reason == "recorded but missing at the provider"
    assert p.step(f"delete:{b.template.key}").op is Op.FORGET
    # Exists at the provider exactly as desired but unrecorded (crash after create): adopt.
    p = plan(deploy_state(), booted(), {b.health_check.key: Observed(b.health_check)})
    assert p.step(f"noop:{b.health_check.key}").op is Op.RECORD
    # Exists but differs and is not ours: refuse to touch it.
    other = b.health_check.model_copy(update={"check_interval_sec": 30})
    with pytest.raises(PlanError, match="not created by mlplane"):
        plan(deploy_state(), booted(), {b.health_check.key: Observed(other)})


def test_replace_fields_of_dynamic_kinds_force_replacement() -> None:
    b = bundle()
    rec = record(b.stack, b.resources, booted())
    mig = InstanceGroupManager.model_validate(
        {**b.instance_group_manager.model_dump(), "zone": "europe-west1-b"}
    )
    resources = tuple(mig if r.key == mig.key else r for r in b.resources)
    p = plan(DesiredState.of(StackSpec(b.stack, resources)), rec)
    assert p.step(f"create:{mig.key}").action is Action.REPLACE
    assert p.step(f"delete:{mig.key}").diff == ("zone",)


def test_plan_render_is_readable() -> None:
    text = plan(retire_state(), record(FRONTEND_STACK, [_with_api_paths()],
                                        deployed(("sentiment", "r1")))).render()  # fmt: skip
    assert "- delete instanceTemplate/sentiment-r1-tmpl" in text
    assert "~ update urlMap/mlplane-urlmap [path_matchers] (1 change)" in text
