"""The lifecycle class of each managed resource kind, as plain strings: what `mlplane status`
shows without importing the specs (its start-up path, decision 0005). A test holds this table
equal to the spec classes' own `LIFECYCLE`."""

from __future__ import annotations

ACTIVE = "active"  # comes and goes with experiments (a service revision's resources)
PASSIVE = "passive"  # created once at bootstrap

LIFECYCLES: dict[str, str] = {
    "instanceTemplate": ACTIVE,
    "instanceGroupManager": ACTIVE,
    "autoscaler": ACTIVE,
    "healthCheck": ACTIVE,
    "backendService": ACTIVE,
    "instance": ACTIVE,
    "urlMap": PASSIVE,
    "targetHttpProxy": PASSIVE,
    "forwardingRule": PASSIVE,
    "endpointsService": PASSIVE,
    "endpointsConfig": PASSIVE,
}


def lifecycle_of(kind: str) -> str:
    """The lifecycle class of a kind ('unknown' for a kind this version does not manage)."""
    return LIFECYCLES.get(kind, "unknown")
