"""TargetHttpProxy on the local provider: binds a URL map to the listeners of forwarding rules
that target it (an update re-points them at another URL map)."""

from __future__ import annotations

from typing import ClassVar

from mlplane.model.compute import ResourceSpec, TargetHttpProxy

from .client import LocalResourceProvider


class LocalTargetHttpProxies(LocalResourceProvider[TargetHttpProxy]):
    KIND: ClassVar[str] = TargetHttpProxy.KIND
    SPEC: ClassVar[type[ResourceSpec]] = TargetHttpProxy
