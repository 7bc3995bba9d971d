"""Load-balancer front end: UrlMap (dynamic), TargetHttpProxy and ForwardingRule (static),
and the route changes lifecycle operations apply to the URL map."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, field_validator, model_validator

from mlplane.model.compute_base import (
    ApiModel,
    Change,
    Lifecycle,
    Mutability,
    Name,
    PermissionCheck,
    ResourceKey,
    ResourceLink,
    ResourceSpec,
    Verb,
    check_name,
    link_key,
    parse_link,
)
from mlplane.model.refs import ResourceRef

MAX_PRIORITY = 2_147_483_647


def _backend_service_link(v: str) -> str:
    if parse_link(v).collection != "backendServices":
        raise ValueError(f"'{v}' must be a backendServices link")
    return v


BackendServiceLink = Annotated[ResourceLink, AfterValidator(_backend_service_link)]


class WeightedBackendService(ApiModel):
    backend_service: BackendServiceLink
    weight: int = Field(ge=0, le=1000)


class HttpRouteAction(ApiModel):
    weighted_backend_services: tuple[WeightedBackendService, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _weights(self) -> Self:
        if not any(w.weight for w in self.weighted_backend_services):
            raise ValueError("weightedBackendServices needs at least one non-zero weight")
        return self


class HttpRouteRuleMatch(ApiModel):
    prefix_match: str | None = None
    full_path_match: str | None = None
    regex_match: str | None = None
    ignore_case: bool | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (
            sum(m is not None for m in (self.prefix_match, self.full_path_match, self.regex_match))
            != 1
        ):
            raise ValueError(
                "a match rule needs exactly one of prefixMatch, fullPathMatch, regexMatch"
            )
        return self


class HttpRouteRule(ApiModel):
    priority: int = Field(ge=0, le=MAX_PRIORITY)
    description: str | None = Field(default=None, max_length=1024)
    match_rules: tuple[HttpRouteRuleMatch, ...] = Field(min_length=1)
    service: BackendServiceLink | None = None
    route_action: HttpRouteAction | None = None

    @model_validator(mode="after")
    def _target(self) -> Self:
        if (self.service is None) == (self.route_action is None):
            raise ValueError(f"route rule {self.priority}: set exactly one of service, routeAction")
        return self

    @property
    def prefix(self) -> str | None:
        """The path prefix when this rule is a single prefix match (the shape routes use)."""
        if len(self.match_rules) == 1 and self.match_rules[0].prefix_match is not None:
            return self.match_rules[0].prefix_match
        return None

    def backend_services(self) -> tuple[str, ...]:
        if self.service is not None:
            return (self.service,)
        assert self.route_action is not None
        return tuple(w.backend_service for w in self.route_action.weighted_backend_services)


class PathRule(ApiModel):
    paths: tuple[str, ...] = Field(min_length=1)
    service: BackendServiceLink

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            if not p.startswith("/") or ("*" in p and not p.endswith("/*")) or p.count("*") > 1:
                raise ValueError(f"path '{p}' must start with '/'; '*' only as a final '/*'")
        return v


class PathMatcher(ApiModel):
    name: str
    default_service: BackendServiceLink | None = None
    path_rules: tuple[PathRule, ...] = ()
    route_rules: tuple[HttpRouteRule, ...] = ()

    @model_validator(mode="after")
    def _rules(self) -> Self:
        check_name(self.name, what="pathMatcher name")
        if self.path_rules and self.route_rules:
            raise ValueError(f"path matcher '{self.name}': use pathRules or routeRules, not both")
        prios = [r.priority for r in self.route_rules]
        if len(prios) != len(set(prios)):
            raise ValueError(f"path matcher '{self.name}': route rule priorities must be unique")
        return self

    def links(self) -> tuple[str, ...]:
        out: list[str] = [self.default_service] if self.default_service else []
        out += [r.service for r in self.path_rules]
        for rule in self.route_rules:
            out += rule.backend_services()
        return tuple(out)


class HostRule(ApiModel):
    hosts: tuple[str, ...] = Field(min_length=1)
    path_matcher: str


class UrlMap(ResourceSpec):
    """`compute.urlMaps` (global): created at bootstrap, its routes change with each revision."""

    KIND: ClassVar[str] = "urlMap"
    COLLECTION: ClassVar[str] = "urlMaps"
    API_SCHEMA: ClassVar[str] = "UrlMap"
    LIFECYCLE: ClassVar[Lifecycle] = Lifecycle.PASSIVE
    MUTABILITY: ClassVar[Mutability] = Mutability.DYNAMIC
    FINGERPRINTED: ClassVar[bool] = True
    PERMISSIONS: ClassVar[dict[Verb, tuple[str, ...]]] = {
        Verb.GET: ("compute.urlMaps.get",),
        Verb.CREATE: (
            "compute.urlMaps.create",
            "compute.urlMaps.get",
            "compute.backendServices.use",
            "compute.globalOperations.get",
        ),
        Verb.UPDATE: (
            "compute.urlMaps.update",
            "compute.urlMaps.get",
            "compute.backendServices.use",
            "compute.globalOperations.get",
        ),
        Verb.DELETE: (
            "compute.urlMaps.delete",
            "compute.urlMaps.get",
            "compute.globalOperations.get",
        ),
    }

    default_service: BackendServiceLink
    host_rules: tuple[HostRule, ...] = ()
    path_matchers: tuple[PathMatcher, ...] = ()

    @model_validator(mode="after")
    def _matchers(self) -> Self:
        names = [m.name for m in self.path_matchers]
        if len(names) != len(set(names)):
            raise ValueError("path matcher names must be unique")
        for rule in self.host_rules:
            if rule.path_matcher not in names:
                raise ValueError(f"host rule names unknown path matcher '{rule.path_matcher}'")
        return self

    def references(self) -> tuple[ResourceKey, ...]:
        links = {self.default_service}
        for m in self.path_matchers:
            links.update(m.links())
        return tuple(sorted(k for k in map(link_key, links) if k))

    def with_changes(self, changes: Sequence[Change]) -> Self:
        """Apply route changes in one pass (keeps planning 1,000 revisions linear)."""
        table = RouteTable.of(self)
        for change in changes:
            if not isinstance(change, RouteChange):
                raise TypeError(f"{type(change).__name__} does not apply to a URL map")
            change.edit(table)
        return self.model_copy(update={"path_matchers": table.render(self)})

    def merge_live(self, live: Self) -> Self:
        """Keep the live routes of each path matcher whose prefixes this spec does not declare."""
        live_by_name = {m.name: m for m in live.path_matchers}
        merged: list[PathMatcher] = []
        for m in self.path_matchers:
            old = live_by_name.get(m.name)
            if old is None or m.path_rules or not old.route_rules:
                merged.append(m)
                continue
            declared = {r.prefix for r in m.route_rules}
            used = {r.priority for r in m.route_rules}
            kept = [
                r for r in old.route_rules if r.prefix not in declared and r.priority not in used
            ]
            merged.append(m.model_copy(update={"route_rules": (*m.route_rules, *kept)}))
        return self.model_copy(update={"path_matchers": tuple(merged)})


class RouteTable:
    """Mutable working copy of a URL map's route rules, keyed by matcher and prefix."""

    def __init__(
        self, rules: dict[str, dict[str, HttpRouteRule]], other: dict[str, list[HttpRouteRule]]
    ):
        self.rules = rules
        self.other = other

    @classmethod
    def of(cls, url_map: UrlMap) -> RouteTable:
        rules: dict[str, dict[str, HttpRouteRule]] = {}
        other: dict[str, list[HttpRouteRule]] = {}
        for m in url_map.path_matchers:
            rules[m.name] = {}
            other[m.name] = []
            for r in m.route_rules:
                if r.prefix is not None:
                    rules[m.name][r.prefix] = r
                else:
                    other[m.name].append(r)
        return cls(rules, other)

    def matcher(self, name: str) -> dict[str, HttpRouteRule]:
        if name not in self.rules:
            raise ValueError(f"the URL map has no path matcher '{name}'")
        return self.rules[name]

    def render(self, url_map: UrlMap) -> tuple[PathMatcher, ...]:
        """The URL map's path matchers with the edited routes (priority order)."""
        matchers = []
        for m in url_map.path_matchers:
            routes = tuple(sorted((*self.rules[m.name].values(), *self.other[m.name]), key=_prio))
            if routes != m.route_rules:
                if m.path_rules and routes:
                    raise ValueError(f"path matcher '{m.name}' uses pathRules; cannot add routes")
                m = PathMatcher(
                    name=m.name,
                    default_service=m.default_service,
                    path_rules=m.path_rules,
                    route_rules=routes,
                )
            matchers.append(m)
        return tuple(matchers)


def _prio(rule: HttpRouteRule) -> int:
    return rule.priority


class RouteChange(Change):
    """A change to the route rules of one URL map."""

    url_map: Name

    @property
    def target(self) -> ResourceKey:
        return ResourceKey(UrlMap.KIND, self.url_map)

    def apply(self, spec: ResourceSpec) -> ResourceSpec:
        if not isinstance(spec, UrlMap):
            raise TypeError(f"a route change applies to a URL map, not {spec.KIND}")
        return spec.with_changes((self,))

    @abstractmethod
    def edit(self, table: RouteTable) -> None:
        """Apply this change to the working route table (raises ValueError if it cannot)."""


class SetRoute(RouteChange):
    """Route `prefix` to the given backend services with weights (adds or replaces the rule)."""

    change: Literal["setRoute"] = "setRoute"
    path_matcher: str
    prefix: str
    backends: tuple[WeightedBackendService, ...] = Field(min_length=1)
    description: str | None = None

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"route prefix '{v}' must start with '/'")
        return v

    def edit(self, table: RouteTable) -> None:
        routes = table.matcher(self.path_matcher)
        live = [w for w in self.backends if w.weight]
        if not live:
            raise ValueError(f"route {self.prefix}: at least one backend needs a non-zero weight")
        old = routes.get(self.prefix)
        if old is None:
            for other in routes:
                if self.prefix.startswith(other):
                    raise ValueError(
                        f"route {self.prefix} would be shadowed by route {other}; "
                        "give services prefixes that are not prefixes of each other"
                    )
            used = [r.priority for r in routes.values()] + [
                r.priority for r in table.other[self.path_matcher]
            ]
            priority = max(used, default=0) + 10
        else:
            priority = old.priority
        match = (HttpRouteRuleMatch(prefix_match=self.prefix),)
        if len(live) == 1 and len(self.backends) == 1:
            rule = HttpRouteRule(
                priority=priority,
                description=self.description,
                match_rules=match,
                service=live[0].backend_service,
            )
        else:
            rule = HttpRouteRule(
                priority=priority,
                description=self.description,
                match_rules=match,
                route_action=HttpRouteAction(weighted_backend_services=self.backends),
            )
        routes[self.prefix] = rule


class RemoveRoute(RouteChange):
    """Remove the rule routing `prefix` (no-op when absent)."""

    change: Literal["removeRoute"] = "removeRoute"
    path_matcher: str
    prefix: str

    def edit(self, table: RouteTable) -> None:
        table.matcher(self.path_matcher).pop(self.prefix, None)


class DetachBackendService(RouteChange):
    """Remove every route reference to a backend service (before it is deleted).

    Weighted rules keep their other backends; rules left without a live backend are removed.
    A backend service that is a default service cannot be detached by a route change.
    """

    change: Literal["detachBackendService"] = "detachBackendService"
    backend_service: BackendServiceLink

    def edit(self, table: RouteTable) -> None:
        gone = link_key(self.backend_service)
        for routes in table.rules.values():
            for prefix, rule in list(routes.items()):
                if rule.route_action is None:
                    if link_key(rule.service) == gone:
                        del routes[prefix]
                    continue
                keep = tuple(
                    w
                    for w in rule.route_action.weighted_backend_services
                    if link_key(w.backend_service) != gone
                )
                if len(keep) == len(rule.route_action.weighted_backend_services):
                    continue
                if not any(w.weight for w in keep):
                    del routes[prefix]
                elif len(keep) == 1:
                    routes[prefix] = rule.model_copy(
                        update={"service": keep[0].backend_service, "route_action": None}
                    )
                else:
                    action = HttpRouteAction(weighted_backend_services=keep)
                    routes[prefix] = rule.model_copy(update={"route_action": action})
        for others in table.other.values():
            if any(gone in map(link_key, r.backend_services()) for r in others):
                raise ValueError(f"{self.backend_service} is used by a non-prefix route rule")


class TargetHttpProxy(ResourceSpec):
    """`compute.targetHttpProxies` (global): created once, points at the URL map."""

    KIND: ClassVar[str] = "targetHttpProxy"
    COLLECTION: ClassVar[str] = "targetHttpProxies"
    API_SCHEMA: ClassVar[str] = "TargetHttpProxy"
    LIFECYCLE: ClassVar[Lifecycle] = Lifecycle.PASSIVE
    MUTABILITY: ClassVar[Mutability] = Mutability.STATIC
    FINGERPRINTED: ClassVar[bool] = True
    PERMISSIONS: ClassVar[dict[Verb, tuple[str, ...]]] = {
        Verb.GET: ("compute.targetHttpProxies.get",),
        Verb.CREATE: (
            "compute.targetHttpProxies.create",
            "compute.targetHttpProxies.get",
            "compute.urlMaps.use",
            "compute.globalOperations.get",
        ),
        Verb.UPDATE: (
            "compute.targetHttpProxies.setUrlMap",
            "compute.targetHttpProxies.get",
            "compute.urlMaps.use",
            "compute.globalOperations.get",
        ),
        Verb.DELETE: (
            "compute.targetHttpProxies.delete",
            "compute.targetHttpProxies.get",
            "compute.globalOperations.get",
        ),
    }

    url_map: ResourceLink

    def references(self) -> tuple[ResourceKey, ...]:
        key = link_key(self.url_map)
        return (key,) if key else ()


class ForwardingRule(ResourceSpec):
    """`compute.globalForwardingRules`: created once; its IP is the Endpoints target."""

    KIND: ClassVar[str] = "forwardingRule"
    COLLECTION: ClassVar[str] = "forwardingRules"
    API_SCHEMA: ClassVar[str] = "ForwardingRule"
    LIFECYCLE: ClassVar[Lifecycle] = Lifecycle.PASSIVE
    MUTABILITY: ClassVar[Mutability] = Mutability.STATIC
    REPLACE_FIELDS: ClassVar[frozenset[str]] = frozenset({"ip_address"})
    PERMISSIONS: ClassVar[dict[Verb, tuple[str, ...]]] = {
        Verb.GET: ("compute.globalForwardingRules.get",),
        Verb.CREATE: (
            "compute.globalForwardingRules.create",
            "compute.globalForwardingRules.get",
            "compute.targetHttpProxies.use",
            "compute.globalOperations.get",
        ),
        Verb.UPDATE: (
            "compute.globalForwardingRules.setTarget",
            "compute.globalForwardingRules.get",
            "compute.targetHttpProxies.use",
            "compute.globalOperations.get",
        ),
        Verb.DELETE: (
            "compute.globalForwardingRules.delete",
            "compute.globalForwardingRules.get",
            "compute.globalOperations.get",
        ),
    }

    target: ResourceLink
    ip_protocol: Literal["TCP"] = Field(default="TCP", alias="IPProtocol")
    port_range: str = "80"
    load_balancing_scheme: Literal["EXTERNAL_MANAGED", "EXTERNAL"] = "EXTERNAL_MANAGED"
    network_tier: Literal["PREMIUM"] = "PREMIUM"
    ip_address: str | None = Field(default=None, alias="IPAddress")

    def references(self) -> tuple[ResourceKey, ...]:
        key = link_key(self.target)
        return (key,) if key else ()

    def extra_permission_checks(self, verb: Verb, project: str) -> tuple[PermissionCheck, ...]:
        if verb is Verb.CREATE and self.ip_address and "/" in self.ip_address:
            ref = ResourceRef(self.KIND, self.name, project)
            return (PermissionCheck(("compute.globalAddresses.use",), ref),)
        return ()
