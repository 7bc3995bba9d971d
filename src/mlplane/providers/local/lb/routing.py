"""The URL map compiled into lookup tables, built once per config.

`Router.route(host, path)` returns the backend service name (`str`), a `WeightedTarget` (call
`choose()` per request: only new requests are split), or None (no route, no default -> 404).
Hosts and paths are bytes as they come off the wire; results are memoised per host and per path
in bounded dicts, so a steady request mix costs two dict lookups.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from random import random

from .config import PathMatcher, RouteRule, UrlMap

_CACHE_MAX = 4096


class WeightedTarget:
    __slots__ = ("cumulative", "names", "total")

    def __init__(self, pairs: list[tuple[str, int]]) -> None:
        live = [(name, w) for name, w in pairs if w > 0]
        self.names = tuple(name for name, _ in live)
        self.cumulative = tuple(accumulate(w for _, w in live))
        self.total = float(self.cumulative[-1])

    def choose(self) -> str:
        return self.names[bisect_right(self.cumulative, random() * self.total)]

    def __repr__(self) -> str:
        return f"WeightedTarget({list(zip(self.names, self.cumulative, strict=True))})"


Target = str | WeightedTarget


class _CompiledMatcher:
    """One path matcher: exact paths, `/*` prefixes, or an ordered list of route rules."""

    __slots__ = ("cache", "default", "exact", "prefixes", "routes")

    def __init__(self, pm: PathMatcher, map_default: str | None) -> None:
        self.default: Target | None = pm.default_service or map_default
        self.exact: dict[bytes, Target] = {}
        self.prefixes: dict[bytes, Target] = {}
        for rule in pm.path_rules:
            for path in rule.paths:
                if path.endswith("/*"):
                    self.prefixes[path[:-1].encode()] = rule.service
                else:
                    self.exact[path.encode()] = rule.service
        self.routes: list[tuple[tuple[tuple[bytes, bool], ...], Target]] = [
            (_matches(rule), _rule_target(rule))
            for rule in sorted(pm.route_rules, key=lambda r: r.priority)
        ]
        self.cache: dict[bytes, Target] = {}

    def lookup(self, path: bytes) -> Target | None:
        target = self.exact.get(path)
        if target is not None:
            return target
        if self.prefixes:
            # Candidate prefixes end in '/': walk the path's slashes from the right (longest first).
            end = len(path)
            while end > 0:
                end = path.rfind(b"/", 0, end)
                if end < 0:
                    break
                target = self.prefixes.get(path[: end + 1])
                if target is not None:
                    return target
        for matches, target in self.routes:
            for value, is_prefix in matches:
                if path.startswith(value) if is_prefix else path == value:
                    return target
        return self.default


def _matches(rule: RouteRule) -> tuple[tuple[bytes, bool], ...]:
    out = []
    for m in rule.match_rules:
        if m.prefix_match is not None:
            out.append((m.prefix_match.encode(), True))
        elif m.full_path_match is not None:
            out.append((m.full_path_match.encode(), False))
    return tuple(out)


def _rule_target(rule: RouteRule) -> Target:
    if rule.service is not None:
        return rule.service
    return WeightedTarget([(w.service, w.weight) for w in rule.weighted_backend_services])


class Router:
    __slots__ = ("_exact_hosts", "_host_cache", "_no_host", "_star", "_wildcards")

    def __init__(self, url_map: UrlMap) -> None:
        compiled = {
            pm.name: _CompiledMatcher(pm, url_map.default_service) for pm in url_map.path_matchers
        }
        self._exact_hosts: dict[bytes, _CompiledMatcher] = {}
        wildcards: list[tuple[bytes, _CompiledMatcher]] = []
        self._star: _CompiledMatcher | None = None
        for hr in url_map.host_rules:
            matcher = compiled[hr.path_matcher]
            for host in hr.hosts:
                h = host.lower().encode()
                if h == b"*":
                    self._star = matcher
                elif h.startswith(b"*"):
                    wildcards.append((h[1:], matcher))
                else:
                    self._exact_hosts[h] = matcher
        # Most specific wildcard first.
        self._wildcards = sorted(wildcards, key=lambda w: -len(w[0]))
        # Requests whose host matches no rule go to the map's default service.
        self._no_host = _CompiledMatcher(PathMatcher(name=""), url_map.default_service)
        self._host_cache: dict[bytes, _CompiledMatcher] = {}

    def route(self, host: bytes, path: bytes) -> Target | None:
        """`host` is the lowercased Host header (may carry a port); `path` has no query."""
        matcher = self._host_cache.get(host)
        if matcher is None:
            matcher = self._match_host(host)
            if len(self._host_cache) >= _CACHE_MAX:
                self._host_cache.clear()
            self._host_cache[host] = matcher
        cache = matcher.cache
        target = cache.get(path)
        if target is None:
            # "" caches "no route" (service names are never empty).
            target = matcher.lookup(path) or ""
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[path] = target
        return target or None

    def _match_host(self, host: bytes) -> _CompiledMatcher:
        bare = host
        colon = host.rfind(b":")
        if colon > 0 and host[colon + 1 :].isdigit() and not host.endswith(b"]"):
            bare = host[:colon]
        for h in (host, bare):
            matcher = self._exact_hosts.get(h)
            if matcher is not None:
                return matcher
        for suffix, matcher in self._wildcards:
            for h in (host, bare):
                if h.endswith(suffix) and len(h) > len(suffix):
                    return matcher
        return self._star or self._no_host
