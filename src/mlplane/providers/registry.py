"""Which class implements which resource kind for which provider.

Adding a provider or a kind = its own module + one line in BUILTIN. Entries are
`"package.module:Class"` strings imported on first use, so `google.cloud` is only imported when
the gcp provider is actually used.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mlplane.errors import ConfigError
from mlplane.model.compute import SPEC_TYPES
from mlplane.providers.base import ProviderContext, ResourceProvider

ProviderFactory = Callable[[ProviderContext], ResourceProvider[Any]]

# (provider, kind) -> "module:Class". One line per implemented kind. Both providers speak
# Google's REST APIs through the same client (providers/gcp); `local` points it at the agent.
_GCP = "mlplane.providers.gcp."
_KINDS: dict[str, str] = {
    "instanceTemplate": _GCP + "compute:ComputeInstanceTemplates",
    "instanceGroupManager": _GCP + "compute:ComputeInstanceGroupManagers",
    "autoscaler": _GCP + "compute:ComputeAutoscalers",
    "healthCheck": _GCP + "compute:ComputeHealthChecks",
    "backendService": _GCP + "compute:ComputeBackendServices",
    "instance": _GCP + "compute:ComputeInstances",
    "urlMap": _GCP + "compute:ComputeUrlMaps",
    "targetHttpProxy": _GCP + "compute:ComputeTargetHttpProxies",
    "forwardingRule": _GCP + "compute:ComputeForwardingRules",
    "endpointsService": _GCP + "servicemanagement:EndpointsServices",
    "endpointsConfig": _GCP + "servicemanagement:EndpointsConfigs",
}
BUILTIN: dict[tuple[str, str], str] = {
    (provider, kind): target for provider in ("local", "gcp") for kind, target in _KINDS.items()
}


@dataclass(frozen=True)
class ProviderSet:
    """The instantiated providers of one backend, by kind (what the engine is given)."""

    name: str
    by_kind: Mapping[str, ResourceProvider[Any]]
    # Built over a client that records mutations instead of sending them (a dry run's): only
    # such a set may be rehearsed (`Engine.rehearse`).
    records_only: bool = False

    def for_kind(self, kind: str) -> ResourceProvider[Any]:
        try:
            return self.by_kind[kind]
        except KeyError:
            raise ConfigError(
                f"provider '{self.name}'", kind, f"no implementation of resource kind '{kind}'"
            ) from None

    def __iter__(self) -> Iterator[ResourceProvider[Any]]:
        return iter(self.by_kind.values())


class ProviderRegistry:
    def __init__(self, entries: Mapping[tuple[str, str], str | ProviderFactory] | None = None):
        self._entries: dict[tuple[str, str], str | ProviderFactory] = dict(entries or {})
        self._lock = threading.Lock()

    def register(self, provider: str, kind: str, target: str | ProviderFactory) -> None:
        """Register `target` ("module:Class" or a factory) for (provider, kind)."""
        if kind not in SPEC_TYPES:
            raise ConfigError(
                "provider registry", kind, f"unknown kind (one of {sorted(SPEC_TYPES)})"
            )
        with self._lock:
            self._entries[(provider, kind)] = target

    def providers(self) -> tuple[str, ...]:
        return tuple(sorted({p for p, _ in self._entries}))

    def kinds(self, provider: str) -> tuple[str, ...]:
        return tuple(sorted(k for p, k in self._entries if p == provider))

    def resolve(self, provider: str, kind: str) -> ProviderFactory:
        with self._lock:
            target = self._entries.get((provider, kind))
        if target is None:
            known = ", ".join(self.kinds(provider)) or "none"
            raise ConfigError(
                f"provider '{provider}'", kind, f"kind not implemented (implemented: {known})"
            )
        if not isinstance(target, str):
            return target
        module_name, _, attr = target.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        if not callable(factory):
            raise ConfigError("provider registry", target, "does not name a class or factory")
        resolved: ProviderFactory = factory
        with self._lock:
            self._entries[(provider, kind)] = resolved
        return resolved

    def build(
        self, provider: str, ctx: ProviderContext, kinds: Iterable[str] | None = None
    ) -> ProviderSet:
        """Instantiate `provider`'s implementations (all its kinds, or `kinds`)."""
        wanted = tuple(kinds) if kinds is not None else self.kinds(provider)
        return ProviderSet(provider, {k: self.resolve(provider, k)(ctx) for k in wanted})


REGISTRY = ProviderRegistry(BUILTIN)
