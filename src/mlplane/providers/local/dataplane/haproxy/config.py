"""The data plane's listeners rendered as an haproxy.cfg (pure: same input, same text).

A listener is a `frontend` on 127.0.0.1:PORT; each of its backend services a `backend`
named `LISTENER.SERVICE`, one `server` per endpoint (`disabled`, i.e. in maintenance, while
our probes say it is not healthy; the runtime API flips it later without a reload). The URL
map becomes `use_backend` rules in the order the Python router evaluates it:

- hosts: exact (with port, then without), wildcards most specific first, then `*`, else the
  map's default service; the chosen path matcher is kept in `txn.pm`;
- paths: exact paths, then `/x/*` prefixes longest first (path rules), or route rules in
  priority order (any match rule), then the matcher's default service;
- weighted route rules split new requests on one random draw per request (`txn.r`).

What HAProxy cannot be given verbatim (names or paths with characters its configuration
would read otherwise) is refused with a ConfigError naming it, never approximated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlplane.errors import ConfigError
from mlplane.providers.local.lb import BackendService, PathMatcher, RouteRule, UrlMap
from mlplane.providers.local.lb.settings import ProxySettings

from ..protocol import Listener

NOT_FOUND = "_mlplane_404"
LOCAL = "127.0.0.1"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
_PATH = re.compile(r"/[A-Za-z0-9/._~:@!&+,;=%-]*")
_HOST = re.compile(r"[a-z0-9.:\[\]-]+")


@dataclass(frozen=True, slots=True)
class Rendered:
    """The configuration text and how its names map back to ours."""

    text: str
    backends: dict[str, tuple[str, str]]  # backend name -> (listener, service)
    servers: dict[tuple[str, str, int], str]  # (backend, host, port) -> server name


@dataclass(frozen=True, slots=True)
class Globals:
    stats_socket: str  # the runtime API (admin level, mode 0600)
    hard_stop_after_sec: float = 30.0  # an old worker's in-flight requests after a reload
    settings: ProxySettings = field(default_factory=ProxySettings)
    threads: int = 1


def backend_name(listener: str, service: str) -> str:
    return f"{listener}.{service}"


def server_name(host: str, port: int, index: int) -> str:
    """`e{port}` for a local endpoint: the same name whether rendered or added at run time."""
    return f"e{port}" if host == LOCAL else f"s{index}"


def shape(text: str) -> str:
    """The configuration without its servers: equal shapes differ only in endpoints, which the
    runtime API can add and remove without a reload."""
    return "\n".join(x for x in text.splitlines() if not x.startswith("    server "))


def render(listeners: Sequence[Listener], g: Globals) -> Rendered:
    """Raises ConfigError for what HAProxy cannot be given as it is."""
    s = g.settings
    out = [
        "# written by the mlplane data plane; every reload rewrites it",
        "global",
        f"    stats socket {g.stats_socket} mode 600 level admin expose-fd listeners",
        f"    nbthread {g.threads}",
        f"    maxconn {s.max_connections}",
        f"    hard-stop-after {_ms(g.hard_stop_after_sec)}",
        "defaults",
        "    mode http",
        "    option dontlognull",
        "    option forwardfor",
        "    option redispatch 1",
        "    http-reuse safe",
        "    balance leastconn",
        f"    retries {max(s.max_attempts - 1, 0)}",
        f"    timeout connect {_ms(s.connect_timeout_sec)}",
        f"    timeout client {_ms(s.client_idle_timeout_sec)}",
        f"    timeout http-request {_ms(s.client_header_timeout_sec)}",
        f"    timeout http-keep-alive {_ms(s.client_idle_timeout_sec)}",
        "    timeout server 30s",
        "",
        f"backend {NOT_FOUND}",
        "    http-request return status 404 content-type application/json string "
        '\'{"error": "no route for this host and path, and the URL map has no default '
        'service", "code": 404}\'',
    ]
    backends: dict[str, tuple[str, str]] = {}
    servers: dict[tuple[str, str, int], str] = {}
    for li in listeners:
        _need_name("listener", li.name)
        out += _frontend(li, s)
        for svc in li.services:
            _need_name(f"listener '{li.name}': backend service", svc.name)
            name = backend_name(li.name, svc.name)
            backends[name] = (li.name, svc.name)
            out += _backend(name, svc, servers)
    return Rendered("\n".join(out) + "\n", backends, servers)


def _ms(sec: float) -> str:
    return f"{max(int(sec * 1000), 1)}ms"


def _need_name(what: str, name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ConfigError(
            "haproxy data plane", what, f"'{name}': use letters, digits, '-' and '_' only"
        )


def _path(src: str, path: str) -> str:
    if not _PATH.fullmatch(path):
        raise ConfigError(
            "haproxy data plane",
            src,
            f"path '{path}' has characters the haproxy data plane cannot match verbatim "
            "(use the python data plane)",
        )
    return path


def _backend(name: str, svc: BackendService, servers: dict[tuple[str, str, int], str]) -> list[str]:
    lines = ["", f"backend {name}", f"    timeout server {_ms(svc.timeout_sec)}"]
    for i, ep in enumerate(svc.endpoints):
        server = server_name(ep.host, ep.port, i)
        servers[(name, ep.host, ep.port)] = server
        state = "" if ep.healthy else " disabled"
        lines.append(f"    server {server} {ep.host}:{ep.port}{state}")
    return lines


def _frontend(li: Listener, s: ProxySettings) -> list[str]:
    m = li.url_map
    pre = [
        "",
        f"frontend {li.name}",
        f"    bind 127.0.0.1:{li.port}",
        f"    http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt "
        f"{s.max_request_body_bytes} }}",
        "    http-request set-header X-Forwarded-Proto http",
        "    http-request return status 200 content-type application/json string "
        '\'{"status": "ok"}\' if { path /_mlplane/health }',
        "    http-request use-service prometheus-exporter if { path /_mlplane/metrics }",
    ]
    if _weighted(m):
        pre.append("    http-request set-var(txn.r) rand")
    routes = [f"    use_backend {NOT_FOUND} if {{ path_beg /_mlplane/ }}"]
    default = backend_name(li.name, m.default_service) if m.default_service else NOT_FOUND
    matchers = {pm.name: pm for pm in m.path_matchers}
    only_star = [hr.path_matcher for hr in m.host_rules if hr.hosts == ("*",)]
    if len(m.host_rules) == 1 and only_star:  # every host: no host logic on the hot path
        routes += _matcher(li.name, matchers[only_star[0]], default, "")
    else:
        order = _host_order(li.name, m)
        if order:
            pre.append("    http-request set-var(txn.h) req.hdr(host),lower")
            pre.append("    http-request set-var(txn.b) var(txn.h),regsub(:[0-9]+$,)")
        unset = "!{ var(txn.pm) -m found }"
        for k, cond in order:
            pre.append(f"    http-request set-var(txn.pm) int({k}) if {unset} {cond}".rstrip())
        for k, pm in enumerate(m.path_matchers):
            routes += _matcher(li.name, pm, default, f"{{ var(txn.pm) -m int {k} }} ")
    routes.append(f"    default_backend {default}")
    return pre + routes


def _host_order(listener: str, m: UrlMap) -> list[tuple[int, str]]:
    """(matcher index, condition) in the order the Python router tries hosts."""
    index = {pm.name: k for k, pm in enumerate(m.path_matchers)}
    exact: list[tuple[int, str]] = []
    wild: list[tuple[int, str]] = []
    star: int | None = None
    for hr in m.host_rules:
        k = index[hr.path_matcher]
        for host in (h.lower() for h in hr.hosts):
            if host == "*":
                star = k
                continue
            bare = host[1:] if host.startswith("*") else host
            if not _HOST.fullmatch(bare):
                raise ConfigError(
                    "haproxy data plane", f"listener '{listener}'", f"host pattern '{host}'"
                )
            if host.startswith("*"):
                wild.append((k, bare))
            else:
                exact.append((k, host))
    order = [(k, f"{{ var(txn.h) -m str {h} }}") for k, h in exact]
    order += [(k, f"{{ var(txn.b) -m str {h} }}") for k, h in exact]
    for k, suffix in sorted(wild, key=lambda w: -len(w[1])):
        regex = "^.+" + suffix.replace(".", "[.]") + "$"
        order += [(k, f"{{ var(txn.{v}) -m reg {regex} }}") for v in ("h", "b")]
    if star is not None:
        order.append((star, ""))
    return order


def _weighted(m: UrlMap) -> bool:
    return any(r.weighted_backend_services for pm in m.path_matchers for r in pm.route_rules)


def _matcher(listener: str, pm: PathMatcher, default: str, when: str) -> list[str]:
    src = f"listener '{listener}' path matcher '{pm.name}'"
    exact: dict[str, list[str]] = {}
    prefixes: list[tuple[str, str]] = []
    for pr in pm.path_rules:
        for p in pr.paths:
            if p.endswith("/*"):
                prefixes.append((_path(src, p[:-1]), pr.service))
            else:
                exact.setdefault(pr.service, []).append(_path(src, p))
    lines = []
    for service, paths in exact.items():
        be = backend_name(listener, service)
        lines.append(f"    use_backend {be} if {when}{{ path -m str {' '.join(paths)} }}")
    for prefix, service in sorted(prefixes, key=lambda p: -len(p[0])):
        be = backend_name(listener, service)
        lines.append(f"    use_backend {be} if {when}{{ path -m beg {prefix} }}")
    for rule in sorted(pm.route_rules, key=lambda r: r.priority):
        lines += _route(listener, src, rule, when)
    own = backend_name(listener, pm.default_service) if pm.default_service else default
    if when:
        lines.append(f"    use_backend {own} if {when.strip()}")
    elif own != default:
        lines.append(f"    use_backend {own}")
    return lines


def _route(listener: str, src: str, rule: RouteRule, when: str) -> list[str]:
    full = [_path(src, m.full_path_match) for m in rule.match_rules if m.full_path_match]
    beg = [_path(src, m.prefix_match) for m in rule.match_rules if m.prefix_match is not None]
    matches = []
    if full:
        matches.append(f"{{ path -m str {' '.join(full)} }}")
    if beg:
        matches.append(f"{{ path -m beg {' '.join(beg)} }}")
    if rule.service is not None:
        targets = [(rule.service, "")]
    else:
        live = [w for w in rule.weighted_backend_services if w.weight > 0]
        total = sum(w.weight for w in live)
        targets, cumulative = [], 0
        for i, w in enumerate(live):
            cumulative += w.weight
            last = i == len(live) - 1
            cut = "" if last else f" {{ var(txn.r),mod({total}) -m int lt {cumulative} }}"
            targets.append((w.service, cut))
    lines = []
    for service, cut in targets:
        cond = " || ".join(f"{when}{m}{cut}" for m in matches)
        lines.append(f"    use_backend {backend_name(listener, service)} if {cond}")
    return lines
