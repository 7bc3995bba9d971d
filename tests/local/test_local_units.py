"""Pure pieces of the local provider: LB translation, health thresholds, tokens, runtime items,
operation and error wire formats."""

from __future__ import annotations

import pytest

from mlplane.model.compute import (
    HealthCheck,
    HostRule,
    HttpHealthCheck,
    HttpRouteRule,
    HttpRouteRuleMatch,
    Metadata,
    MetadataItem,
    PathMatcher,
    PathRule,
    ResourceKey,
    UrlMap,
    Verb,
)
from mlplane.model.principals import Principal
from mlplane.providers.base import Operation, OperationError, OperationStatus, operation_error
from mlplane.providers.errors import InvalidRequest
from mlplane.providers.gcp.operations import compute_operation
from mlplane.providers.local import lb
from mlplane.providers.local.agent import lb_config
from mlplane.providers.local.agent.auth.tokens import TokenAuthority
from mlplane.providers.local.agent.health import Health, HealthTrack
from mlplane.providers.local.agent.operations import Operations
from mlplane.providers.local.agent.surfaces import compute_views
from mlplane.providers.local.runtime import items_of, runtime_metadata, runtime_of

BES = "global/backendServices/"


def route(priority: int, prefix: str, service: str) -> HttpRouteRule:
    return HttpRouteRule(
        priority=priority,
        match_rules=(HttpRouteRuleMatch(prefix_match=prefix),),
        service=BES + service,
    )


def test_url_map_translation_routes_openapi_to_the_agent_first() -> None:
    spec = UrlMap(
        name="m",
        default_service=BES + "d",
        host_rules=(HostRule(hosts=("*",), path_matcher="models"),),
        path_matchers=(
            PathMatcher(
                name="models",
                default_service=BES + "d",
                route_rules=(route(0, "/v1/models/a/", "a"), route(20, "/v1/models/b/", "b")),
            ),
        ),
    )
    out = lb_config.url_map(spec)
    rules = out.path_matchers[0].route_rules
    assert [(r.priority, r.service) for r in rules] == [
        (0, lb_config.OPENAPI_SERVICE),
        (1, "a"),
        (2, "b"),
    ]
    assert rules[0].match_rules[0].full_path_match == "/openapi.json"
    services = [lb.BackendService(n) for n in ("a", "b", "d")]
    lb.validate(out, [*services, lb_config.openapi_service(1)])
    router_map = lb_config.url_map(spec, openapi=False)
    assert [r.priority for r in router_map.path_matchers[0].route_rules] == [0, 20]


def test_url_map_translation_with_path_rules_and_no_catch_all_host() -> None:
    spec = UrlMap(
        name="m",
        default_service=BES + "d",
        host_rules=(HostRule(hosts=("api.example.com",), path_matcher="pm"),),
        path_matchers=(
            PathMatcher(name="pm", path_rules=(PathRule(paths=("/x/*",), service=BES + "x"),)),
        ),
    )
    out = lb_config.url_map(spec)
    assert out.path_matchers[0].path_rules[0] == lb.PathRule(
        ("/openapi.json",), lb_config.OPENAPI_SERVICE
    )
    assert out.host_rules[-1] == lb.HostRule(("*",), lb_config.OPENAPI_MATCHER)
    lb.validate(out, [lb.BackendService("x"), lb.BackendService("d"), lb_config.openapi_service(1)])


def test_regex_routes_are_refused_with_a_clear_message() -> None:
    spec = UrlMap(
        name="m",
        default_service=BES + "d",
        host_rules=(HostRule(hosts=("*",), path_matcher="pm"),),
        path_matchers=(
            PathMatcher(
                name="pm",
                route_rules=(
                    HttpRouteRule(
                        priority=1,
                        match_rules=(HttpRouteRuleMatch(regex_match="/v[0-9]+/"),),
                        service=BES + "d",
                    ),
                ),
            ),
        ),
    )
    with pytest.raises(ValueError, match="regexMatch"):
        lb_config.url_map(spec)


@pytest.mark.parametrize(("text", "port"), [("8080", 8080), ("8080-8080", 8080)])
def test_forwarding_rule_ports(text: str, port: int) -> None:
    assert lb_config.parse_port(text) == port


@pytest.mark.parametrize("text", ["80-90", "http", "0", "70000"])
def test_bad_forwarding_rule_ports(text: str) -> None:
    with pytest.raises(ValueError, match="portRange"):
        lb_config.parse_port(text)


def check(healthy: int, unhealthy: int) -> HealthCheck:
    return HealthCheck(
        name="h",
        http_health_check=HttpHealthCheck(),
        healthy_threshold=healthy,
        unhealthy_threshold=unhealthy,
    )


def test_health_thresholds() -> None:
    hc = check(healthy=2, unhealthy=3)
    t = HealthTrack()
    states = []
    for ok in (True, True, False, False, True, False, False, False, True, True):
        t = t.observe(ok, hc)
        states.append(t.state)
    u, h, x = Health.UNKNOWN, Health.HEALTHY, Health.UNHEALTHY
    assert states == [u, h, h, h, h, h, h, x, x, h]


def test_tokens_expire_refresh_and_are_revoked(tmp_path: object) -> None:
    from pathlib import Path

    now = [0.0]
    store = Path(str(tmp_path)) / "tokens.json"
    tokens = TokenAuthority(store, clock=lambda: now[0])
    sa = Principal("serviceAccount", "sa-a@p.iam.gserviceaccount.com")
    a = tokens.current(sa, "instance", "vm-a")
    assert tokens.current(sa, "instance", "vm-a") == a
    assert tokens.lookup(a.value) == a.token and a.token.principal == sa
    now[0] = 3400.0  # less than 300 s left: a fresh token, the old one still valid
    b = tokens.current(sa, "instance", "vm-a")
    assert b != a and tokens.lookup(a.value) == a.token
    now[0] = 3600.0
    assert tokens.lookup(a.value) is None and tokens.lookup(b.value) == b.token
    assert tokens.revoke("instance", "vm-a") == 2
    assert tokens.lookup(b.value) is None
    # sign-in tokens are kept (hashed, 0600) for a restarted agent; instance tokens are not
    user = tokens.issue(Principal("user", "alice@acme.com"), "signin", "alice@acme.com")
    again = TokenAuthority(store, clock=lambda: now[0])
    assert again.lookup(user.value) == user.token
    assert user.value not in store.read_text() and oct(store.stat().st_mode)[-3:] == "600"


def test_runtime_items_round_trip_and_errors() -> None:
    import sys

    items = runtime_metadata(
        ["python", "serve.py", "--port", "$PORT"], {"MODE": "fast"}, "gs://b/m"
    )
    rt = runtime_of(items, "t")
    assert rt.argv == (sys.executable, "serve.py", "--port", "$PORT")  # the agent's python
    assert rt.env == {"MODE": "fast", "MLPLANE_MODEL_ARTIFACT": "gs://b/m"}
    assert items["startup-script"].startswith("#!/bin/bash")  # what a COS VM would run
    meta = Metadata(items=(MetadataItem(key="mlplane-args", value='["/bin/true", "x"]'),))
    assert runtime_of(items_of(meta), "t").argv == ("/bin/true", "x")
    assert runtime_of({"startup-script": "echo hi"}, "t").argv == ("/bin/sh", "-c", "echo hi")
    with pytest.raises(ValueError, match="has no 'mlplane-args'"):
        runtime_of({}, "template x")
    with pytest.raises(ValueError, match="non-empty list of strings"):
        runtime_of({"mlplane-args": "[]"}, "t")
    with pytest.raises(ValueError, match="environment variable"):
        runtime_of({"mlplane-args": '["x"]', "mlplane-env-A-B": "1"}, "t")


def test_operations_survive_the_wire() -> None:
    """An operation the agent renders (Compute's JSON) reads back into the same operation."""
    ops = Operations()
    key = ResourceKey("forwardingRule", "fr")
    rec = ops.start(key, Verb.CREATE, "global", "req-1", op_type="insert", user="a@b.c")
    ops.finish(rec, OperationError("invalid", "port 80 on 127.0.0.1 is already in use", 400))
    links = compute_views.Links("http://127.0.0.1:1/compute/v1/", "p")
    data = compute_views.operation(rec, links, links.of("global/forwardingRules/fr"))
    op = compute_operation(data, key, Verb.CREATE)
    assert op == Operation(
        rec.name, key, Verb.CREATE, OperationStatus.DONE, rec.error, "global", 100
    )
    error = operation_error(op, "create forwardingRule/fr")
    assert isinstance(error, InvalidRequest) and "port 80" in str(error)


def test_a_damaged_token_store_is_kept_aside_and_starts_empty(tmp_path: object) -> None:
    from pathlib import Path

    store = Path(str(tmp_path)) / "tokens.json"
    store.write_text('{"truncated": ')
    tokens = TokenAuthority(store, clock=lambda: 0.0)
    [aside] = [p for p in store.parent.iterdir() if p.name.startswith("tokens.json.damaged-")]
    assert aside.read_text() == '{"truncated": ' and not store.exists()  # nothing lost
    user = tokens.issue(Principal("user", "alice@acme.com"), "signin", "alice@acme.com")
    assert TokenAuthority(store, clock=lambda: 0.0).lookup(user.value) == user.token
