"""Typed routing configuration of the local load balancer, mirroring Compute Engine.

`UrlMap` / `HostRule` / `PathMatcher` / `PathRule` / `RouteRule` follow the URL map resource;
`BackendService` carries the local endpoints (host, port) that a network endpoint group would
hold on GCP. Everything is a frozen dataclass; `validate` checks a map against its services and
raises `mlplane.errors.ConfigError` naming the offending field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mlplane.errors import ConfigError

MAX_PRIORITY = 2_147_483_647
MAX_WEIGHT = 1000

_Need = Callable[[str | None, str], None]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One replica of a backend service; `healthy` is pushed in by the health-check owner.
    `health_check` names the check that gates it (for the data plane, which probes it)."""

    host: str
    port: int
    healthy: bool = True
    health_check: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class BackendService:
    """A set of endpoints with a response timeout and a connection-draining timeout.

    `timeout_sec` bounds the wait for the response head and each read of the response body.
    `connection_draining_timeout_sec` is how long in-flight requests to a removed endpoint may
    run on; 0 disables draining (in-flight requests are aborted), as on GCP.
    """

    name: str
    endpoints: tuple[Endpoint, ...] = ()
    timeout_sec: float = 30.0
    connection_draining_timeout_sec: float = 300.0


@dataclass(frozen=True, slots=True)
class PathRule:
    """`paths` are exact (`/a/b`) or prefix patterns ending in `/*` (`/a/*` matches `/a/`, `/a/x`,
    not `/a`); the longest matching pattern in the matcher wins."""

    paths: tuple[str, ...]
    service: str


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """Exactly one of `prefix_match` and `full_path_match`."""

    prefix_match: str | None = None
    full_path_match: str | None = None


@dataclass(frozen=True, slots=True)
class WeightedBackendService:
    service: str
    weight: int


@dataclass(frozen=True, slots=True)
class RouteRule:
    """Evaluated in ascending `priority`; the first rule with a matching `match_rules` entry wins.

    Exactly one of `service` and `weighted_backend_services` (traffic share = weight / sum).
    """

    priority: int
    match_rules: tuple[RouteMatch, ...]
    service: str | None = None
    weighted_backend_services: tuple[WeightedBackendService, ...] = ()


@dataclass(frozen=True, slots=True)
class PathMatcher:
    """Either `path_rules` or `route_rules`; `default_service` when none matches (else the
    URL map's)."""

    name: str
    default_service: str | None = None
    path_rules: tuple[PathRule, ...] = ()
    route_rules: tuple[RouteRule, ...] = ()


@dataclass(frozen=True, slots=True)
class HostRule:
    """`hosts` are `host[:port]`, `*` alone, or `*` as first char followed by `.` or `-`."""

    hosts: tuple[str, ...]
    path_matcher: str


@dataclass(frozen=True, slots=True)
class UrlMap:
    default_service: str | None = None
    host_rules: tuple[HostRule, ...] = ()
    path_matchers: tuple[PathMatcher, ...] = ()
    name: str = "mlplane-urlmap"


def service_name(ref: str) -> str:
    """`projects/P/global/backendServices/x` (full or partial URL) -> `x`."""
    return ref.rstrip("/").rsplit("/", 1)[-1]


def validate(url_map: UrlMap, services: Sequence[BackendService]) -> None:
    """Raise ConfigError for the first problem found; return None when the config is usable."""
    _validate_services(services)
    names = {s.name for s in services}
    src = f"url map '{url_map.name}'"

    def need(ref: str | None, where: str) -> None:
        if ref is not None and ref not in names:
            known = ", ".join(sorted(names)) or "none"
            raise ConfigError(src, where, f"unknown backend service '{ref}' (known: {known})")

    need(url_map.default_service, "defaultService")
    matcher_names = [m.name for m in url_map.path_matchers]
    _no_duplicates(src, "pathMatchers", "path matcher name", matcher_names)
    referenced: set[str] = set()
    seen_hosts: set[str] = set()
    for i, hr in enumerate(url_map.host_rules):
        where = f"hostRules[{i}]"
        if not hr.hosts:
            raise ConfigError(src, where, "a host rule needs at least one host")
        for host in hr.hosts:
            _check_host(src, where, host)
            if host.lower() in seen_hosts:
                raise ConfigError(src, where, f"host '{host}' appears in more than one host rule")
            seen_hosts.add(host.lower())
        if hr.path_matcher not in matcher_names:
            raise ConfigError(src, where, f"unknown path matcher '{hr.path_matcher}'")
        referenced.add(hr.path_matcher)
    for i, pm in enumerate(url_map.path_matchers):
        where = f"pathMatchers[{i}] ('{pm.name}')"
        if pm.name not in referenced:
            raise ConfigError(
                src,
                where,
                "path matcher is not referenced by any host rule; add "
                f"HostRule(hosts=('*',), path_matcher='{pm.name}')",
            )
        need(pm.default_service, f"{where}.defaultService")
        if pm.path_rules and pm.route_rules:
            raise ConfigError(src, where, "use either pathRules or routeRules, not both")
        _validate_path_rules(src, where, pm.path_rules, need)
        _validate_route_rules(src, where, pm.route_rules, need)


def _validate_services(services: Sequence[BackendService]) -> None:
    _no_duplicates("backend services", "", "backend service name", [s.name for s in services])
    for s in services:
        src = f"backend service '{s.name}'"
        if not s.name:
            raise ConfigError("backend services", "name", "a backend service needs a name")
        if not s.timeout_sec > 0:
            raise ConfigError(src, "timeoutSec", f"must be > 0, got {s.timeout_sec}")
        if s.connection_draining_timeout_sec < 0:
            raise ConfigError(src, "connectionDraining.drainingTimeoutSec", "must be >= 0")
        validate_endpoints(src, s.endpoints)


def validate_endpoints(src: str, endpoints: Iterable[Endpoint]) -> None:
    seen: set[tuple[str, int]] = set()
    for i, ep in enumerate(endpoints):
        if not ep.host:
            raise ConfigError(src, f"endpoints[{i}]", "endpoint host is empty")
        if not 0 < ep.port < 65536:
            raise ConfigError(src, f"endpoints[{i}]", f"port {ep.port} is out of range 1..65535")
        if (ep.host, ep.port) in seen:
            raise ConfigError(src, f"endpoints[{i}]", f"duplicate endpoint {ep.address}")
        seen.add((ep.host, ep.port))


def _no_duplicates(src: str, where: str, what: str, values: Iterable[str]) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ConfigError(src, where, f"duplicate {what} '{v}'")
        seen.add(v)


def _check_host(src: str, where: str, host: str) -> None:
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise ConfigError(src, where, f"invalid host pattern '{host}'")
    if "*" in host and not (host == "*" or (host[0] == "*" and host[1] in ".-")):
        raise ConfigError(
            src, where, f"host '{host}': '*' is allowed only as first char, followed by '.' or '-'"
        )
    if "*" in host[1:]:
        raise ConfigError(src, where, f"host '{host}': only one leading '*' is allowed")


def _check_path(src: str, where: str, path: str, *, wildcard: bool) -> None:
    if not path.startswith("/"):
        raise ConfigError(src, where, f"path '{path}' must start with '/'")
    if "?" in path or "#" in path:
        raise ConfigError(src, where, f"path '{path}' must not contain '?' or '#'")
    star = path.find("*")
    if star >= 0 and not (wildcard and star == len(path) - 1 and path.endswith("/*")):
        raise ConfigError(src, where, f"path '{path}': '*' is allowed only at the end after '/'")


def _validate_path_rules(src: str, where: str, rules: Sequence[PathRule], need: _Need) -> None:
    seen: set[str] = set()
    for j, rule in enumerate(rules):
        rwhere = f"{where}.pathRules[{j}]"
        if not rule.paths:
            raise ConfigError(src, rwhere, "a path rule needs at least one path")
        need(rule.service, f"{rwhere}.service")
        for path in rule.paths:
            _check_path(src, rwhere, path, wildcard=True)
            if path in seen:
                raise ConfigError(src, rwhere, f"path '{path}' appears in more than one rule")
            seen.add(path)


def _validate_route_rules(src: str, where: str, rules: Sequence[RouteRule], need: _Need) -> None:
    priorities: set[int] = set()
    for j, rule in enumerate(rules):
        rwhere = f"{where}.routeRules[{j}]"
        if not 0 <= rule.priority <= MAX_PRIORITY:
            raise ConfigError(src, rwhere, f"priority {rule.priority} is out of 0..{MAX_PRIORITY}")
        if rule.priority in priorities:
            raise ConfigError(
                src,
                rwhere,
                f"duplicate priority {rule.priority}: priorities are unique per matcher",
            )
        priorities.add(rule.priority)
        if not rule.match_rules:
            raise ConfigError(src, rwhere, "a route rule needs at least one match rule")
        for k, m in enumerate(rule.match_rules):
            mwhere = f"{rwhere}.matchRules[{k}]"
            value = m.prefix_match if m.full_path_match is None else m.full_path_match
            if (m.prefix_match is None) == (m.full_path_match is None) or value is None:
                raise ConfigError(src, mwhere, "set exactly one of prefixMatch and fullPathMatch")
            _check_path(src, mwhere, value, wildcard=False)
        if (rule.service is None) == (not rule.weighted_backend_services):
            raise ConfigError(src, rwhere, "set exactly one of service and weightedBackendServices")
        need(rule.service, f"{rwhere}.service")
        for k, w in enumerate(rule.weighted_backend_services):
            wwhere = f"{rwhere}.weightedBackendServices[{k}]"
            need(w.service, wwhere)
            if not 0 <= w.weight <= MAX_WEIGHT:
                raise ConfigError(src, wwhere, f"weight {w.weight} is out of 0..{MAX_WEIGHT}")
        if rule.weighted_backend_services and not any(
            w.weight for w in rule.weighted_backend_services
        ):
            raise ConfigError(src, rwhere, "weights are all zero: at least one must be > 0")
