"""The local provider's load balancer: BackendService + UrlMap + TargetHttpProxy + ForwardingRule
as one HTTP/1.1 reverse proxy on asyncio Protocols (uvloop when installed), listening on
127.0.0.1 only. In the agent it runs inside the data plane's process (`providers/local/dataplane`).

    lb = LoadBalancer(url_map, backend_services)          # validated: raises ConfigError
    port = await lb.start(port=0)
    lb.set_endpoints("sentiment-r12-bes", [Endpoint("127.0.0.1", 8001, healthy=True)])
    lb.apply(new_url_map, new_backend_services)            # live swap, in-flight requests finish
    lb.metrics_snapshot()                                  # per-service counters for other code
    await lb.stop()

Reserved prefix: paths under `/_mlplane/` are answered by the load balancer itself and never
routed: `GET /_mlplane/metrics` (Prometheus text format), `GET /_mlplane/healthz`.

Call `apply`, `set_endpoints` and the metrics methods on the event loop's thread (from another
thread: `loop.call_soon_threadsafe`). Both swaps take effect between two requests.

Standalone: `python -m mlplane.providers.local.lb --port P --config FILE.json [--loop auto]`
(see `config_json` for the file format); SIGTERM drains and exits, SIGHUP re-applies the file's URL
map and backend services (its proxySettings are read at start only).

Modules: `config` (frozen dataclasses + validation), `config_json` (Compute-Engine-style JSON),
`settings` (limits, timeouts), `routing` (the URL map compiled to lookup tables), `http` and
`response` (message heads, RFC 9112-strict: a malformed head is a 400 and is never forwarded),
`body` (streaming relays), `peer` (a connection as a Protocol that is its own reader and
writer), `upstream` (an endpoint connection; one with unread bytes is never pooled), `pool`
(endpoints, keep-alive pools, least-outstanding choice, draining), `conn` (per-client state,
timeout phases), `client` (the client protocol: the common request on callbacks, no
coroutine), `forward` (everything else as a coroutine: connecting, retry policy), `exchange`
(its less common paths), `metrics`, `proxy` (the `LoadBalancer`: listener, live config,
connection cap, sweeper).
"""

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
    validate,
)
from .config_json import LbConfig, load_config, parse_config
from .metrics import MetricsSnapshot, ServiceSnapshot
from .proxy import LoadBalancer
from .settings import RESERVED_PREFIX, ProxySettings

__all__ = [
    "RESERVED_PREFIX",
    "BackendService",
    "Endpoint",
    "HostRule",
    "LbConfig",
    "LoadBalancer",
    "MetricsSnapshot",
    "PathMatcher",
    "PathRule",
    "ProxySettings",
    "RouteMatch",
    "RouteRule",
    "ServiceSnapshot",
    "UrlMap",
    "WeightedBackendService",
    "load_config",
    "parse_config",
    "validate",
]
