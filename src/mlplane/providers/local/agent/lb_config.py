"""Compute Engine specs -> the local load balancer's configuration (pure translation).

The URL map keeps its routing; backend services get the healthy replicas of their groups as
endpoints. One addition: `GET /openapi.json` is routed to the agent, which serves the merged
OpenAPI document of the Endpoints configs (the load balancer has no hook for static answers,
so the agent is an internal backend service, `_mlplane-openapi`, whose name no GCP resource
can take). Route-rule priorities are renumbered in order to make room for it at priority 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mlplane.model.compute import BackendService, PathMatcher, UrlMap, link_key
from mlplane.providers.local import lb

OPENAPI_SERVICE = "_mlplane-openapi"
OPENAPI_MATCHER = "_mlplane-openapi"
OPENAPI_PATH = "/openapi.json"
DRAINING_SEC = 5.0


def name_of(link: str) -> str:
    key = link_key(link)
    return key.name if key else link.rstrip("/").rsplit("/", 1)[-1]


def url_map(spec: UrlMap, *, openapi: bool = True) -> lb.UrlMap:
    """The load balancer's URL map; ValueError for features the local LB lacks."""
    matchers = tuple(_matcher(m) for m in spec.path_matchers)
    out = lb.UrlMap(
        default_service=name_of(spec.default_service),
        host_rules=tuple(lb.HostRule(h.hosts, h.path_matcher) for h in spec.host_rules),
        path_matchers=matchers,
        name=spec.name,
    )
    return _with_openapi(out) if openapi else out


def _matcher(m: PathMatcher) -> lb.PathMatcher:
    rules = []
    for r in m.route_rules:
        matches = []
        for mr in r.match_rules:
            if mr.regex_match is not None or mr.ignore_case:
                raise ValueError(
                    f"path matcher '{m.name}' rule {r.priority}: regexMatch and ignoreCase are "
                    "not supported by the local load balancer (use prefixMatch/fullPathMatch)"
                )
            matches.append(lb.RouteMatch(mr.prefix_match, mr.full_path_match))
        weighted: tuple[lb.WeightedBackendService, ...] = ()
        if r.route_action is not None:
            weighted = tuple(
                lb.WeightedBackendService(name_of(w.backend_service), w.weight)
                for w in r.route_action.weighted_backend_services
            )
        service = name_of(r.service) if r.service else None
        rules.append(lb.RouteRule(r.priority, tuple(matches), service, weighted))
    return lb.PathMatcher(
        name=m.name,
        default_service=name_of(m.default_service) if m.default_service else None,
        path_rules=tuple(lb.PathRule(p.paths, name_of(p.service)) for p in m.path_rules),
        route_rules=tuple(rules),
    )


def _with_openapi(m: lb.UrlMap) -> lb.UrlMap:
    route = lb.RouteRule(0, (lb.RouteMatch(full_path_match=OPENAPI_PATH),), service=OPENAPI_SERVICE)
    matchers = []
    for pm in m.path_matchers:
        if pm.path_rules:
            if not any(OPENAPI_PATH in r.paths for r in pm.path_rules):
                rule = lb.PathRule((OPENAPI_PATH,), OPENAPI_SERVICE)
                pm = replace(pm, path_rules=(rule, *pm.path_rules))
        else:
            ordered = sorted(pm.route_rules, key=lambda r: r.priority)
            renumbered = tuple(replace(r, priority=i + 1) for i, r in enumerate(ordered))
            pm = replace(pm, route_rules=(route, *renumbered))
        matchers.append(pm)
    host_rules = m.host_rules
    if not any("*" in h.hosts for h in host_rules):
        matchers.append(lb.PathMatcher(name=OPENAPI_MATCHER, route_rules=(route,)))
        host_rules = (*host_rules, lb.HostRule(("*",), OPENAPI_MATCHER))
    return replace(m, host_rules=host_rules, path_matchers=tuple(matchers))


def backend_service(spec: BackendService, endpoints: Sequence[lb.Endpoint]) -> lb.BackendService:
    return lb.BackendService(
        name=spec.name,
        endpoints=tuple(endpoints),
        timeout_sec=float(spec.timeout_sec),
        connection_draining_timeout_sec=DRAINING_SEC,
    )


def openapi_service(agent_port: int) -> lb.BackendService:
    return lb.BackendService(
        name=OPENAPI_SERVICE,
        endpoints=(lb.Endpoint("127.0.0.1", agent_port),),
        timeout_sec=10.0,
        connection_draining_timeout_sec=0.0,
    )


def service_names(spec: UrlMap) -> tuple[str, ...]:
    return tuple(k.name for k in spec.references() if k.kind == BackendService.KIND)


def parse_port(port_range: str) -> int:
    """The single port of a local forwarding rule: `8080` or `8080-8080`."""
    low, _, high = port_range.partition("-")
    try:
        port = int(low)
        if high and int(high) != port:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"portRange '{port_range}': a local forwarding rule listens on one port "
            "(write e.g. '8080')"
        ) from None
    if not 1 <= port <= 65535:
        raise ValueError(f"portRange '{port_range}': port out of range 1..65535")
    return port
