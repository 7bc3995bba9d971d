"""Per-backend-service counters, a latency histogram and in-flight gauges.

Recording is a few integer increments on the request path; `render_prometheus` formats the text
exposition (version 0.0.4) served on `/_mlplane/metrics`, `snapshot` gives the same figures as
frozen dataclasses to other code (e.g. an autoscaler measuring load).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass

BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
ERROR_KINDS = ("connect", "reset", "timeout", "protocol")


class ServiceMetrics:
    """Mutable counters of one backend service; only the event-loop thread touches them."""

    __slots__ = (
        "buckets",
        "errors",
        "in_flight",
        "latency_sum",
        "requests",
        "retries",
        "start_sum",
        "total",
    )

    def __init__(self) -> None:
        self.requests = [0] * 6  # index: status // 100
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.retries = 0
        self.in_flight = 0
        self.buckets = [0] * (len(BUCKETS) + 1)  # last: +Inf
        self.latency_sum = 0.0
        self.start_sum = 0.0  # sum of the start times of the requests in flight
        self.total = 0

    def observe(self, status: int, seconds: float) -> None:
        self.total += 1
        self.requests[status // 100 if 100 <= status < 600 else 5] += 1
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def busy_seconds(self, now: float) -> float:
        """The integral of `in_flight` over time up to `now` (request-seconds): its change over
        an interval divided by the interval is the mean number of requests in flight, in O(1)
        whenever it is read, however many requests came and went."""
        return self.latency_sum + self.in_flight * now - self.start_sum


@dataclass(frozen=True, slots=True)
class ServiceSnapshot:
    requests: Mapping[str, int]  # by status class "2xx", ...
    errors: Mapping[str, int]  # upstream errors by kind
    retries: int
    in_flight: int
    latency_count: int
    latency_sum: float
    latency_buckets: tuple[tuple[float, int], ...]  # (upper bound, cumulative count); inf last
    endpoints: int
    healthy_endpoints: int

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    services: Mapping[str, ServiceSnapshot]
    unrouted: Mapping[int, int]  # responses the proxy made without a backend service, by status


def snapshot_service(m: ServiceMetrics, endpoints: int, healthy: int) -> ServiceSnapshot:
    cumulative = []
    running = 0
    for bound, count in zip((*BUCKETS, float("inf")), m.buckets, strict=True):
        running += count
        cumulative.append((bound, running))
    return ServiceSnapshot(
        requests={cls: m.requests[i + 1] for i, cls in enumerate(CLASSES)},
        errors=dict(m.errors),
        retries=m.retries,
        in_flight=m.in_flight,
        latency_count=running,
        latency_sum=m.latency_sum,
        latency_buckets=tuple(cumulative),
        endpoints=endpoints,
        healthy_endpoints=healthy,
    )


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def render_prometheus(snap: MetricsSnapshot) -> str:
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    def sample(metric: str, labels: Mapping[str, str], value: float) -> None:
        text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        out.append(f"{metric}{{{text}}} {value}")

    services = sorted(snap.services.items())
    family("mlplane_lb_requests_total", "counter", "Responses sent, by backend service and class.")
    for name, s in services:
        for cls, n in s.requests.items():
            sample("mlplane_lb_requests_total", {"backend_service": name, "code": cls}, n)
    family("mlplane_lb_upstream_errors_total", "counter", "Failed upstream attempts, by kind.")
    for name, s in services:
        for kind, n in s.errors.items():
            sample("mlplane_lb_upstream_errors_total", {"backend_service": name, "kind": kind}, n)
    family("mlplane_lb_retries_total", "counter", "Requests retried on another endpoint.")
    for name, s in services:
        sample("mlplane_lb_retries_total", {"backend_service": name}, s.retries)
    family("mlplane_lb_in_flight_requests", "gauge", "Requests being proxied now.")
    for name, s in services:
        sample("mlplane_lb_in_flight_requests", {"backend_service": name}, s.in_flight)
    family("mlplane_lb_endpoints", "gauge", "Endpoints of the backend service, by health.")
    for name, s in services:
        healthy = s.healthy_endpoints
        sample("mlplane_lb_endpoints", {"backend_service": name, "healthy": "true"}, healthy)
        unhealthy = s.endpoints - healthy
        sample("mlplane_lb_endpoints", {"backend_service": name, "healthy": "false"}, unhealthy)
    hist = "mlplane_lb_request_duration_seconds"
    family(hist, "histogram", "Time from request head received to response sent.")
    for name, s in services:
        for bound, n in s.latency_buckets:
            sample(f"{hist}_bucket", {"backend_service": name, "le": _fmt(bound)}, n)
        sample(f"{hist}_sum", {"backend_service": name}, s.latency_sum)
        sample(f"{hist}_count", {"backend_service": name}, s.latency_count)
    family("mlplane_lb_unrouted_responses_total", "counter", "Responses made by the proxy itself.")
    for status, n in sorted(snap.unrouted.items()):
        sample("mlplane_lb_unrouted_responses_total", {"code": str(status)}, n)
    return "\n".join(out) + "\n"
