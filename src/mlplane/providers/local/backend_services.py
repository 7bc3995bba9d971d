"""BackendService on the local provider: the load balancer's service whose endpoints are the
healthy replicas of its backend MIGs (by its own health check); health changes are pushed into
the load balancer as they happen. Fingerprinted: an update needs the fingerprint of the latest
get (412 otherwise)."""

from __future__ import annotations

from typing import ClassVar

from mlplane.model.compute import BackendService, ResourceSpec

from .client import LocalResourceProvider


class LocalBackendServices(LocalResourceProvider[BackendService]):
    KIND: ClassVar[str] = BackendService.KIND
    SPEC: ClassVar[type[ResourceSpec]] = BackendService
