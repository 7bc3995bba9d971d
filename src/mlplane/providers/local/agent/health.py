"""Health in the agent: the data plane probes every replica (see `dataplane.health`); the agent
turns HealthCheck resources into what the data plane needs and reads back each replica's
HealthTrack for autohealing and status views."""

from __future__ import annotations

from mlplane.model.compute import HealthCheck
from mlplane.providers.local.dataplane.health import CheckSpec, Health, HealthTrack

__all__ = ["CheckSpec", "Health", "HealthTrack", "check_spec"]


def check_spec(check: HealthCheck) -> CheckSpec:
    http = check.http_health_check
    return CheckSpec(
        name=check.name,
        request_path=http.request_path,
        host=http.host or "",
        interval_sec=float(check.check_interval_sec),
        timeout_sec=float(check.timeout_sec),
        healthy_threshold=check.healthy_threshold,
        unhealthy_threshold=check.unhealthy_threshold,
    )
