"""UrlMap on the local provider: the routing of every load balancer whose proxy points at it.
Fingerprinted like GCP: an update carrying a stale fingerprint fails with `FingerprintConflict`
(412); re-read, re-apply the intent, retry."""

from __future__ import annotations

from typing import ClassVar

from mlplane.model.compute import ResourceSpec, UrlMap

from .client import LocalResourceProvider


class LocalUrlMaps(LocalResourceProvider[UrlMap]):
    KIND: ClassVar[str] = UrlMap.KIND
    SPEC: ClassVar[type[ResourceSpec]] = UrlMap
