"""Read the load balancer config from JSON with Compute-Engine field names.

```json
{
  "backendServices": [{"name": "a-bes", "timeoutSec": 30,
                       "connectionDraining": {"drainingTimeoutSec": 300},
                       "endpoints": [{"ipAddress": "127.0.0.1", "port": 8001}]}],
  "urlMap": {"name": "m", "defaultService": "global/backendServices/a-bes",
             "hostRules": [{"hosts": ["*"], "pathMatcher": "pm"}],
             "pathMatchers": [{"name": "pm", "defaultService": "a-bes",
                               "routeRules": [{"priority": 10,
                                               "matchRules": [{"prefixMatch": "/v1/"}],
                                               "routeAction": {"weightedBackendServices": [
                                                 {"backendService": "a-bes", "weight": 100}]}}]}]},
  "proxySettings": {"maxRequestBodyBytes": 1048576}
}
```
Service references may be full or partial resource URLs. Output-only and informational fields
(`kind`, `fingerprint`, `selfLink`, ...) are ignored; fields of features the local load balancer
does not implement (header matches, redirects, rewrites, ...) are rejected with a clear error.
`endpoints` (a network endpoint group's `ipAddress` + `port`) is the local stand-in for `backends`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mlplane.errors import ConfigError

from .config import (
    BackendService,
    Endpoint,
    HostRule,
    PathMatcher,
    PathRule,
    RouteMatch,
    RouteRule,
    UrlMap,
    WeightedBackendService,
    service_name,
    validate,
)
from .settings import ProxySettings

_IGNORED = frozenset(
    {"kind", "id", "fingerprint", "selfLink", "creationTimestamp", "description", "region"}
    | {"loadBalancingScheme", "protocol", "portName", "healthChecks", "tests", "tags"}
)


@dataclass(frozen=True, slots=True)
class LbConfig:
    url_map: UrlMap
    backend_services: tuple[BackendService, ...]
    settings: ProxySettings = field(default_factory=ProxySettings)


def load_config(path: str | Path) -> LbConfig:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), "", f"cannot read JSON: {exc}") from exc
    return parse_config(doc, source=str(path))


def parse_config(doc: object, source: str = "config") -> LbConfig:
    """Parse and validate; raises ConfigError naming the JSON path of the first problem."""
    top = _obj(doc, source, "", {"backendServices", "urlMap", "proxySettings"})
    services = tuple(
        _service(s, source, f"backendServices[{i}]")
        for i, s in enumerate(_list(top.get("backendServices", []), source, "backendServices"))
    )
    url_map = _url_map(top.get("urlMap", {}), source, "urlMap")
    settings = _settings(top.get("proxySettings", {}), source)
    validate(url_map, services)
    return LbConfig(url_map, services, settings)


def _obj(value: object, src: str, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(src, where, f"expected an object, got {type(value).__name__}")
    for key in value:
        if key not in allowed and key not in _IGNORED:
            raise ConfigError(
                src, f"{where}.{key}".lstrip("."), "unknown or unsupported field in the local LB"
            )
    return value


def _list(value: object, src: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(src, where, f"expected a list, got {type(value).__name__}")
    return value


def _typed(value: object, kind: type, src: str, where: str) -> Any:
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ConfigError(src, where, f"expected {kind.__name__}, got {value!r}")
    return value


def _ref(value: object, src: str, where: str) -> str:
    return service_name(_typed(value, str, src, where))


def _opt_ref(obj: Mapping[str, Any], key: str, src: str, where: str) -> str | None:
    return None if obj.get(key) is None else _ref(obj[key], src, f"{where}.{key}")


def _service(value: object, src: str, where: str) -> BackendService:
    o = _obj(value, src, where, {"name", "endpoints", "timeoutSec", "connectionDraining"})
    draining = _obj(
        o.get("connectionDraining", {}), src, f"{where}.connectionDraining", {"drainingTimeoutSec"}
    )
    endpoints = []
    for i, e in enumerate(_list(o.get("endpoints", []), src, f"{where}.endpoints")):
        ew = f"{where}.endpoints[{i}]"
        eo = _obj(e, src, ew, {"ipAddress", "port", "healthy", "healthCheck"})
        check = eo.get("healthCheck")
        endpoints.append(
            Endpoint(
                _typed(eo.get("ipAddress", "127.0.0.1"), str, src, f"{ew}.ipAddress"),
                _typed(eo.get("port"), int, src, f"{ew}.port"),
                _typed(eo.get("healthy", True), bool, src, f"{ew}.healthy"),
                None if check is None else _typed(check, str, src, f"{ew}.healthCheck"),
            )
        )
    return BackendService(
        name=_typed(o.get("name"), str, src, f"{where}.name"),
        endpoints=tuple(endpoints),
        timeout_sec=float(_typed(o.get("timeoutSec", 30), float, src, f"{where}.timeoutSec")),
        connection_draining_timeout_sec=float(
            _typed(
                draining.get("drainingTimeoutSec", 300), float, src, f"{where}.connectionDraining"
            )
        ),
    )


def _url_map(value: object, src: str, where: str) -> UrlMap:
    o = _obj(value, src, where, {"name", "defaultService", "hostRules", "pathMatchers"})
    host_rules = []
    for i, h in enumerate(_list(o.get("hostRules", []), src, f"{where}.hostRules")):
        hw = f"{where}.hostRules[{i}]"
        ho = _obj(h, src, hw, {"hosts", "pathMatcher"})
        hosts = tuple(
            _typed(x, str, src, f"{hw}.hosts") for x in _list(ho.get("hosts"), src, f"{hw}.hosts")
        )
        host_rules.append(HostRule(hosts, _typed(ho.get("pathMatcher"), str, src, hw)))
    matchers = tuple(
        _path_matcher(m, src, f"{where}.pathMatchers[{i}]")
        for i, m in enumerate(_list(o.get("pathMatchers", []), src, f"{where}.pathMatchers"))
    )
    return UrlMap(
        default_service=_opt_ref(o, "defaultService", src, where),
        host_rules=tuple(host_rules),
        path_matchers=matchers,
        name=_typed(o.get("name", "mlplane-urlmap"), str, src, f"{where}.name"),
    )


def _path_matcher(value: object, src: str, where: str) -> PathMatcher:
    o = _obj(value, src, where, {"name", "defaultService", "pathRules", "routeRules"})
    path_rules = []
    for i, r in enumerate(_list(o.get("pathRules", []), src, f"{where}.pathRules")):
        rw = f"{where}.pathRules[{i}]"
        ro = _obj(r, src, rw, {"paths", "service"})
        paths = tuple(_typed(p, str, src, rw) for p in _list(ro.get("paths"), src, f"{rw}.paths"))
        path_rules.append(PathRule(paths, _ref(ro.get("service"), src, f"{rw}.service")))
    route_rules = [
        _route_rule(r, src, f"{where}.routeRules[{i}]")
        for i, r in enumerate(_list(o.get("routeRules", []), src, f"{where}.routeRules"))
    ]
    return PathMatcher(
        name=_typed(o.get("name"), str, src, f"{where}.name"),
        default_service=_opt_ref(o, "defaultService", src, where),
        path_rules=tuple(path_rules),
        route_rules=tuple(route_rules),
    )


def _route_rule(value: object, src: str, where: str) -> RouteRule:
    o = _obj(value, src, where, {"priority", "matchRules", "service", "routeAction"})
    matches = []
    for i, m in enumerate(_list(o.get("matchRules", []), src, f"{where}.matchRules")):
        mw = f"{where}.matchRules[{i}]"
        mo = _obj(m, src, mw, {"prefixMatch", "fullPathMatch"})
        prefix, full = mo.get("prefixMatch"), mo.get("fullPathMatch")
        matches.append(
            RouteMatch(
                None if prefix is None else _typed(prefix, str, src, f"{mw}.prefixMatch"),
                None if full is None else _typed(full, str, src, f"{mw}.fullPathMatch"),
            )
        )
    action = _obj(
        o.get("routeAction", {}), src, f"{where}.routeAction", {"weightedBackendServices"}
    )
    weighted = []
    for i, w in enumerate(_list(action.get("weightedBackendServices", []), src, where)):
        ww = f"{where}.routeAction.weightedBackendServices[{i}]"
        wo = _obj(w, src, ww, {"backendService", "weight"})
        weighted.append(
            WeightedBackendService(
                _ref(wo.get("backendService"), src, f"{ww}.backendService"),
                _typed(wo.get("weight"), int, src, f"{ww}.weight"),
            )
        )
    return RouteRule(
        priority=_typed(o.get("priority"), int, src, f"{where}.priority"),
        match_rules=tuple(matches),
        service=_opt_ref(o, "service", src, where),
        weighted_backend_services=tuple(weighted),
    )


def _settings(value: object, src: str) -> ProxySettings:
    names = {f.name: f for f in fields(ProxySettings)}
    camel = {_camel(n): n for n in names}
    o = _obj(value, src, "proxySettings", set(camel))
    kwargs: dict[str, Any] = {}
    for key, raw in o.items():
        if key in _IGNORED:
            continue
        name = camel[key]
        kind = float if name.endswith("_sec") else int
        kwargs[name] = _typed(raw, kind, src, f"proxySettings.{key}")
    settings = ProxySettings(**kwargs)
    settings.check()
    return settings


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.title() for p in rest)


def config_to_json(url_map: UrlMap, services: Sequence[BackendService]) -> dict[str, Any]:
    """The inverse of `parse_config` (without proxySettings): what the data plane is sent."""
    return {
        "urlMap": _url_map_json(url_map),
        "backendServices": [_service_json(s) for s in services],
    }


def _service_json(s: BackendService) -> dict[str, Any]:
    endpoints = []
    for e in s.endpoints:
        ep: dict[str, Any] = {"ipAddress": e.host, "port": e.port, "healthy": e.healthy}
        if e.health_check is not None:
            ep["healthCheck"] = e.health_check
        endpoints.append(ep)
    return {
        "name": s.name,
        "endpoints": endpoints,
        "timeoutSec": s.timeout_sec,
        "connectionDraining": {"drainingTimeoutSec": s.connection_draining_timeout_sec},
    }


def _url_map_json(m: UrlMap) -> dict[str, Any]:
    out: dict[str, Any] = {"name": m.name}
    if m.default_service is not None:
        out["defaultService"] = m.default_service
    out["hostRules"] = [
        {"hosts": list(h.hosts), "pathMatcher": h.path_matcher} for h in m.host_rules
    ]
    out["pathMatchers"] = [_matcher_json(pm) for pm in m.path_matchers]
    return out


def _matcher_json(pm: PathMatcher) -> dict[str, Any]:
    out: dict[str, Any] = {"name": pm.name}
    if pm.default_service is not None:
        out["defaultService"] = pm.default_service
    out["pathRules"] = [{"paths": list(r.paths), "service": r.service} for r in pm.path_rules]
    rules = []
    for r in pm.route_rules:
        rule: dict[str, Any] = {
            "priority": r.priority,
            "matchRules": [_match_json(m) for m in r.match_rules],
        }
        if r.service is not None:
            rule["service"] = r.service
        if r.weighted_backend_services:
            rule["routeAction"] = {
                "weightedBackendServices": [
                    {"backendService": w.service, "weight": w.weight}
                    for w in r.weighted_backend_services
                ]
            }
        rules.append(rule)
    out["routeRules"] = rules
    return out


def _match_json(m: RouteMatch) -> dict[str, str]:
    if m.prefix_match is not None:
        return {"prefixMatch": m.prefix_match}
    return {"fullPathMatch": m.full_path_match or ""}
