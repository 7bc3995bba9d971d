"""Two mlplane commands at once, as two processes sharing the state store and the cloud."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from fake_provider import (
    ENDPOINTS,
    bootstrap_state,
    bundle,
    deploy_state,
    make_world,
    run_child,
)

from mlplane.model.compute import FRONTEND_STACK, EndpointsConfig, ResourceKey, UrlMap

URL_MAP = ResourceKey("urlMap", "mlplane-urlmap")
CONFIG = ResourceKey("endpointsConfig", ENDPOINTS)


def run_pair(directory: Path, a: tuple[str, str], b: tuple[str, str]) -> list[int | None]:
    ctx = multiprocessing.get_context("fork")
    barrier = str(directory / "barrier")
    procs = [
        ctx.Process(
            target=run_child,
            args=(str(directory), "deploy", service, rev),
            kwargs={"barrier": barrier, "read_delay": 0.02},
        )
        for service, rev in (a, b)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    return [p.exitcode for p in procs]


def test_two_processes_deploying_different_revisions_keep_both_routes(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    w.apply(bootstrap_state()).raise_for_failures()
    w.close()
    assert run_pair(tmp_path, ("sentiment", "r1"), ("ranker", "r7")) == [0, 0]
    w = make_world(tmp_path)
    cloud = w.cloud.resources()
    for service, rev in (("sentiment", "r1"), ("ranker", "r7")):
        assert {r.key for r in bundle(service, rev).resources} <= set(cloud)
    url_map, config = cloud[URL_MAP], cloud[CONFIG]
    assert isinstance(url_map, UrlMap) and isinstance(config, EndpointsConfig)
    prefixes = {r.prefix for r in url_map.path_matchers[0].route_rules}
    assert prefixes == {"/v1/models/sentiment/", "/v1/models/ranker/"}
    assert set(config.openapi.paths) == {
        "/v1/models/sentiment/predict",
        "/v1/models/ranker/predict",
    }
    # Neither lost the other's update in the store either, and both plans are now empty.
    assert {k: r.spec for k, r in w.store.load().items()} == cloud
    assert w.store.get(URL_MAP).stack == FRONTEND_STACK  # type: ignore[union-attr]
    assert w.engine.plan(deploy_state("sentiment", "r1")).empty
    assert w.engine.plan(deploy_state("ranker", "r7")).empty
    assert w.engine.journal.open_intents(["serving/sentiment/r1", "serving/ranker/r7"]) == []
    w.close()


def test_two_processes_applying_the_same_stack_are_serialized(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    w.apply(bootstrap_state()).raise_for_failures()
    w.close()
    assert run_pair(tmp_path, ("sentiment", "r1"), ("sentiment", "r1")) == [0, 0]
    w = make_world(tmp_path)
    creates = [(k, n) for k, n, v in w.cloud.effects() if v == "create" and "sentiment" in n]
    assert sorted(creates) == sorted((r.KIND, r.name) for r in bundle().resources)
    url_map = w.cloud.resources()[URL_MAP]
    assert isinstance(url_map, UrlMap) and len(url_map.path_matchers[0].route_rules) == 1
    assert {k: r.spec for k, r in w.store.load().items()} == w.cloud.resources()
    w.close()
