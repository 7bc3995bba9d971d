"""URL map / backend service validation and the Compute-Engine-style JSON reader."""

from __future__ import annotations

import json

import pytest

from mlplane.errors import ConfigError
from mlplane.providers.local.lb import (
    BackendService,
    Endpoint,
    HostRule,
    PathMatcher,
    PathRule,
    RouteMatch,
    RouteRule,
    UrlMap,
    WeightedBackendService,
    load_config,
    parse_config,
    validate,
)

A = BackendService("a", (Endpoint("127.0.0.1", 8001),))
B = BackendService("b", (Endpoint("127.0.0.1", 8002),))


def matcher_map(pm: PathMatcher, default: str | None = "a") -> UrlMap:
    return UrlMap(default, (HostRule(("*",), pm.name),), (pm,))


def test_valid_map_passes() -> None:
    rules = (
        RouteRule(10, (RouteMatch(prefix_match="/v1/"),), service="a"),
        RouteRule(
            20,
            (RouteMatch(full_path_match="/x"),),
            weighted_backend_services=(
                WeightedBackendService("a", 90),
                WeightedBackendService("b", 10),
            ),
        ),
    )
    validate(matcher_map(PathMatcher("pm", "b", route_rules=rules)), [A, B])


@pytest.mark.parametrize(
    ("url_map", "needle"),
    [
        (UrlMap("nope"), "unknown backend service 'nope'"),
        (
            matcher_map(PathMatcher("pm", path_rules=(PathRule(("/x",), "ghost"),))),
            "unknown backend service 'ghost'",
        ),
        (
            matcher_map(
                PathMatcher(
                    "pm",
                    route_rules=(
                        RouteRule(5, (RouteMatch(prefix_match="/a"),), service="a"),
                        RouteRule(5, (RouteMatch(prefix_match="/b"),), service="b"),
                    ),
                )
            ),
            "duplicate priority 5",
        ),
        (
            matcher_map(
                PathMatcher(
                    "pm",
                    route_rules=(
                        RouteRule(
                            1,
                            (RouteMatch(prefix_match="/a"),),
                            weighted_backend_services=(
                                WeightedBackendService("a", 0),
                                WeightedBackendService("b", 0),
                            ),
                        ),
                    ),
                )
            ),
            "weights are all zero",
        ),
        (
            matcher_map(
                PathMatcher(
                    "pm",
                    route_rules=(
                        RouteRule(
                            1,
                            (RouteMatch(prefix_match="/a"),),
                            weighted_backend_services=(WeightedBackendService("a", 1001),),
                        ),
                    ),
                )
            ),
            "out of 0..1000",
        ),
        (
            matcher_map(PathMatcher("pm", path_rules=(PathRule(("/a/*/b",), "a"),))),
            "'*' is allowed only at the end",
        ),
        (
            matcher_map(PathMatcher("pm", path_rules=(PathRule(("nope",), "a"),))),
            "must start with '/'",
        ),
        (
            matcher_map(
                PathMatcher(
                    "pm",
                    path_rules=(PathRule(("/a",), "a"),),
                    route_rules=(RouteRule(1, (RouteMatch(prefix_match="/"),), service="a"),),
                )
            ),
            "either pathRules or routeRules",
        ),
        (
            matcher_map(
                PathMatcher(
                    "pm", route_rules=(RouteRule(1, (RouteMatch("/a", "/b"),), service="a"),)
                )
            ),
            "exactly one of prefixMatch and fullPathMatch",
        ),
        (UrlMap("a", path_matchers=(PathMatcher("lonely", "a"),)), "not referenced"),
        (UrlMap("a", host_rules=(HostRule(("*",), "missing"),)), "unknown path matcher"),
        (
            UrlMap("a", (HostRule(("a*.com",), "pm"),), (PathMatcher("pm", "a"),)),
            "'*' is allowed only as first char",
        ),
    ],
)
def test_invalid_maps_are_rejected_with_the_field(url_map: UrlMap, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(url_map, [A, B])
    assert needle in str(err.value)


def test_invalid_services_are_rejected() -> None:
    with pytest.raises(ConfigError, match="duplicate backend service name 'a'"):
        validate(UrlMap("a"), [A, A])
    with pytest.raises(ConfigError, match="out of range"):
        validate(UrlMap("a"), [BackendService("a", (Endpoint("127.0.0.1", 0),))])
    with pytest.raises(ConfigError, match="duplicate endpoint"):
        validate(UrlMap("a"), [BackendService("a", (A.endpoints[0], A.endpoints[0]))])
    with pytest.raises(ConfigError, match="timeoutSec"):
        validate(UrlMap("a"), [BackendService("a", timeout_sec=0)])


R11_URL = "global/backendServices/sentiment-r11-bes"
DOC = {
    "backendServices": [
        {
            "name": "sentiment-r11-bes",
            "kind": "compute#backendService",
            "timeoutSec": 12,
            "connectionDraining": {"drainingTimeoutSec": 7},
            "endpoints": [{"ipAddress": "127.0.0.1", "port": 9001}],
        },
        {"name": "sentiment-r12-bes", "endpoints": [{"port": 9002, "healthy": False}]},
    ],
    "urlMap": {
        "name": "mlplane-urlmap",
        "fingerprint": "abc=",
        "defaultService": "projects/P/global/backendServices/sentiment-r11-bes",
        "hostRules": [{"hosts": ["*"], "pathMatcher": "models"}],
        "pathMatchers": [
            {
                "name": "models",
                "defaultService": "https://www.googleapis.com/compute/v1/projects/P/global/backendServices/sentiment-r11-bes",
                "routeRules": [
                    {
                        "priority": 10,
                        "matchRules": [{"prefixMatch": "/v1/models/sentiment"}],
                        "routeAction": {
                            "weightedBackendServices": [
                                {"backendService": R11_URL, "weight": 90},
                                {"backendService": "sentiment-r12-bes", "weight": 10},
                            ]
                        },
                    }
                ],
            }
        ],
    },
    "proxySettings": {"maxRequestBodyBytes": 1024, "clientIdleTimeoutSec": 3},
}  # fmt: skip


def test_json_config_maps_to_dataclasses(tmp_path: object) -> None:
    cfg = parse_config(DOC)
    r11, r12 = cfg.backend_services
    assert r11 == BackendService(
        "sentiment-r11-bes",
        (Endpoint("127.0.0.1", 9001),),
        timeout_sec=12.0,
        connection_draining_timeout_sec=7.0,
    )
    assert r12.endpoints == (Endpoint("127.0.0.1", 9002, healthy=False),)
    assert cfg.url_map.default_service == "sentiment-r11-bes"
    rule = cfg.url_map.path_matchers[0].route_rules[0]
    assert rule.match_rules == (RouteMatch(prefix_match="/v1/models/sentiment"),)
    assert rule.weighted_backend_services == (
        WeightedBackendService("sentiment-r11-bes", 90),
        WeightedBackendService("sentiment-r12-bes", 10),
    )
    assert cfg.settings.max_request_body_bytes == 1024
    assert cfg.settings.client_idle_timeout_sec == 3.0


def test_json_config_errors_name_the_json_path(tmp_path: pytest.TempPathFactory) -> None:
    bad = json.loads(json.dumps(DOC))
    bad["urlMap"]["pathMatchers"][0]["routeRules"][0]["matchRules"][0]["headerMatches"] = []
    with pytest.raises(ConfigError, match=r"matchRules\[0\]\.headerMatches.*unsupported"):
        parse_config(bad)
    bad = json.loads(json.dumps(DOC))
    bad["backendServices"][0]["endpoints"][0]["port"] = "9001"
    with pytest.raises(ConfigError, match=r"endpoints\[0\]\.port: expected int"):
        parse_config(bad)
    bad = json.loads(json.dumps(DOC))
    bad["urlMap"]["defaultService"] = "global/backendServices/ghost"
    with pytest.raises(ConfigError, match="unknown backend service 'ghost'"):
        parse_config(bad)


def test_load_config_reads_a_file(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "lb.json"  # type: ignore[operator]
    path.write_text(json.dumps(DOC))
    assert load_config(path).url_map.name == "mlplane-urlmap"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read JSON"):
        load_config(path)
