"""The service and revision routes of the load balancer, read from a URL map's API body (as the
state store records it and as `compute.urlMaps.get` returns it), for views that list
(`mlplane serve list`): stdlib only, no spec classes (their start-up path, decision 0017).

A service answers at `/v1/models/SERVICE/`, split by weight across its revisions' backend
services; a revision at its own `/v1/revisions/SERVICE-REV/`.
"""

from __future__ import annotations

from mlplane import jsonread
from mlplane.model.value import Value


def model_prefix(service: str) -> str:
    """URL path prefix of a served model (trailing slash: no service shadows another)."""
    return f"/v1/models/{service}/"


def revision_prefix(service: str, revision: str) -> str:
    return f"/v1/revisions/{service}-{revision}/"


class Route(Value):
    """A path prefix and the backend services (short names) it splits across, by weight."""

    __slots__ = ("prefix", "backends")
    prefix: str
    backends: tuple[tuple[str, int], ...]

    def __init__(self, prefix: str, backends: tuple[tuple[str, int], ...]) -> None:
        self._set(prefix=prefix, backends=backends)

    def shares(self) -> dict[str, int]:
        """Backend service -> percent of the route's traffic."""
        total = sum(w for _, w in self.backends) or 1
        return {name: round(100 * w / total) for name, w in self.backends}


def _short(link: object) -> str:
    return str(link or "").rsplit("/", 1)[-1]


def routes_of(url_map_json: str) -> tuple[Route, ...]:
    """The prefix routes of a URL map's API body (JSON text); () for an unreadable one."""
    try:
        body = jsonread.loads(url_map_json)
    except ValueError:
        return ()
    out = []
    for matcher in body.get("pathMatchers") or ():
        for rule in matcher.get("routeRules") or ():
            prefixes = [m.get("prefixMatch") for m in rule.get("matchRules") or ()]
            prefix = next((p for p in prefixes if p), None)
            if prefix is None:
                continue
            if rule.get("service"):
                out.append(Route(prefix, ((_short(rule["service"]), 100),)))
                continue
            weighted = (rule.get("routeAction") or {}).get("weightedBackendServices") or ()
            backends = tuple(
                (_short(w.get("backendService")), int(w.get("weight", 0))) for w in weighted
            )
            out.append(Route(prefix, backends))
    return tuple(out)


def service_shares(routes: tuple[Route, ...], service: str) -> dict[str, int]:
    """Backend service -> percent of `service`'s route ({} when it has none)."""
    wanted = model_prefix(service)
    return next((r.shares() for r in routes if r.prefix == wanted), {})


def port_of(forwarding_rule_json: str) -> str:
    """The first port of a forwarding rule's API body ('' for an unreadable one)."""
    try:
        return str(jsonread.loads(forwarding_rule_json).get("portRange") or "").partition("-")[0]
    except (ValueError, AttributeError):
        return ""
