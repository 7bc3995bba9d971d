"""Cloud Endpoints on the local provider: the service (static) is a record; the config's OpenAPI
document (merged across configs) is served by every local load balancer at `/openapi.json`
(and by the agent itself at the same path)."""

from __future__ import annotations

from typing import ClassVar

from mlplane.model.compute import EndpointsConfig, EndpointsService, ResourceSpec

from .client import LocalResourceProvider


class LocalEndpointsServices(LocalResourceProvider[EndpointsService]):
    KIND: ClassVar[str] = EndpointsService.KIND
    SPEC: ClassVar[type[ResourceSpec]] = EndpointsService


class LocalEndpointsConfigs(LocalResourceProvider[EndpointsConfig]):
    KIND: ClassVar[str] = EndpointsConfig.KIND
    SPEC: ClassVar[type[ResourceSpec]] = EndpointsConfig
