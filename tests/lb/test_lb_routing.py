"""The compiled URL map: host rules, path rules (longest match, `/*`), route rules, weights."""

from __future__ import annotations

import random
from collections import Counter

from mlplane.providers.local.lb import (
    HostRule,
    PathMatcher,
    PathRule,
    RouteMatch,
    RouteRule,
    UrlMap,
    WeightedBackendService,
)
from mlplane.providers.local.lb.routing import Router, WeightedTarget


def test_path_rules_longest_match_and_star_semantics() -> None:
    pm = PathMatcher(
        "pm",
        default_service="pm-default",
        path_rules=(
            PathRule(("/*",), "root"),
            PathRule(("/videos/*",), "videos"),
            PathRule(("/videos/hd/*", "/exact"), "hd"),
            PathRule(("/videos",), "videos-exact"),
        ),
    )
    r = Router(UrlMap("map-default", (HostRule(("*",), "pm"),), (pm,)))
    assert r.route(b"h", b"/videos/hd/x/y") == "hd"
    assert r.route(b"h", b"/videos/hd/") == "hd"
    assert r.route(b"h", b"/videos/hd") == "videos"  # '/videos/hd/*' needs the slash
    assert r.route(b"h", b"/videos/") == "videos"
    assert r.route(b"h", b"/videos") == "videos-exact"
    assert r.route(b"h", b"/exact") == "hd"
    assert r.route(b"h", b"/exact/more") == "root"
    assert r.route(b"h", b"/other") == "root"
    # Asked twice: the memoised answer is the same.
    assert r.route(b"h", b"/videos/hd/x/y") == "hd"


def test_matcher_default_then_map_default_then_none() -> None:
    pm = PathMatcher("pm", path_rules=(PathRule(("/a",), "a"),))
    with_default = Router(UrlMap("fallback", (HostRule(("*",), "pm"),), (pm,)))
    assert with_default.route(b"h", b"/zzz") == "fallback"
    no_default = Router(UrlMap(None, (HostRule(("*",), "pm"),), (pm,)))
    assert no_default.route(b"h", b"/zzz") is None
    assert no_default.route(b"h", b"/a") == "a"
    assert Router(UrlMap(None)).route(b"h", b"/a") is None
    assert Router(UrlMap("only")).route(b"h", b"/anything") == "only"


def test_route_rules_priority_order_prefix_and_full_path() -> None:
    pm = PathMatcher(
        "pm",
        default_service="d",
        route_rules=(
            RouteRule(30, (RouteMatch(prefix_match="/v1/"),), service="v1"),
            RouteRule(10, (RouteMatch(full_path_match="/v1/models/x"),), service="exact-x"),
            RouteRule(
                20,
                (RouteMatch(prefix_match="/v1/models/"), RouteMatch(prefix_match="/v2/")),
                service="models",
            ),
        ),
    )
    r = Router(UrlMap(None, (HostRule(("*",), "pm"),), (pm,)))
    assert r.route(b"h", b"/v1/models/x") == "exact-x"
    assert r.route(b"h", b"/v1/models/x/y") == "models"
    assert r.route(b"h", b"/v2/anything") == "models"
    assert r.route(b"h", b"/v1/other") == "v1"
    assert r.route(b"h", b"/v3") == "d"


def test_host_rules_exact_wildcard_port_and_default() -> None:
    def pm(name: str) -> PathMatcher:
        return PathMatcher(name, default_service=name)

    url_map = UrlMap(
        "no-host",
        (
            HostRule(("api.example.com",), "exact"),
            HostRule(("*.example.com",), "wild"),
            HostRule(("*.b.example.com",), "wild-longer"),
            HostRule(("localhost:8080",), "with-port"),
        ),
        (pm("exact"), pm("wild"), pm("wild-longer"), pm("with-port")),
    )
    r = Router(url_map)
    assert r.route(b"api.example.com", b"/") == "exact"
    assert r.route(b"api.example.com:80", b"/") == "exact"
    assert r.route(b"x.example.com", b"/") == "wild"
    assert r.route(b"x.b.example.com", b"/") == "wild-longer"
    assert r.route(b"localhost:8080", b"/") == "with-port"
    assert r.route(b"localhost:9090", b"/") == "no-host"
    assert r.route(b"example.com", b"/") == "no-host"


def test_weighted_split_matches_weights_statistically() -> None:
    random.seed(1234)
    target = WeightedTarget([("a", 90), ("b", 10), ("never", 0)])
    counts = Counter(target.choose() for _ in range(20_000))
    assert set(counts) == {"a", "b"}
    # 10 % of 20k = 2000, binomial sd ~42: +-250 is > 5 sd.
    assert abs(counts["b"] - 2000) < 250, counts


def test_weighted_route_rule_returns_a_weighted_target() -> None:
    rule = RouteRule(
        1,
        (RouteMatch(prefix_match="/"),),
        weighted_backend_services=(WeightedBackendService("a", 1), WeightedBackendService("b", 3)),
    )
    r = Router(UrlMap(None, (HostRule(("*",), "pm"),), (PathMatcher("pm", route_rules=(rule,)),)))
    target = r.route(b"h", b"/x")
    assert isinstance(target, WeightedTarget)
    assert target.names == ("a", "b")
    assert target.cumulative == (1, 4)
