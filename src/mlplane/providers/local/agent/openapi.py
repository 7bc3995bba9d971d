"""The OpenAPI document the local load balancers serve at /openapi.json: the Endpoints configs
merged (the first config's header, every config's paths; a path in several configs keeps the
first's, configs in name order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlplane.model.compute import EndpointsConfig

EMPTY: dict[str, Any] = {
    "swagger": "2.0",
    "info": {"title": "mlplane models (local)", "version": "0"},
    "paths": {},
}


def merged(configs: Sequence[EndpointsConfig]) -> dict[str, Any]:
    if not configs:
        return dict(EMPTY)
    ordered = sorted(configs, key=lambda c: c.name)
    doc: dict[str, Any] = ordered[0].openapi.to_api()
    paths: dict[str, Any] = {}
    for config in ordered:
        for path, item in config.openapi.to_api().get("paths", {}).items():
            paths.setdefault(path, item)
    doc["paths"] = dict(sorted(paths.items()))
    return doc
