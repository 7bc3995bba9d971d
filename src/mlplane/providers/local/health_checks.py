"""HealthCheck on the local provider: the agent probes every replica that uses it (MIG autohealing
or a backend service) with an HTTP GET of `requestPath` on the replica's own port (locally the
serving port, whatever `port` says), every `checkIntervalSec`, waiting `timeoutSec`; HTTP 200 is
a success, `healthyThreshold`/`unhealthyThreshold` consecutive results flip the state."""

from __future__ import annotations

from typing import ClassVar

from mlplane.model.compute import HealthCheck, ResourceSpec

from .client import LocalResourceProvider


class LocalHealthChecks(LocalResourceProvider[HealthCheck]):
    KIND: ClassVar[str] = HealthCheck.KIND
    SPEC: ClassVar[type[ResourceSpec]] = HealthCheck
