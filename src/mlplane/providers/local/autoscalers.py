"""Autoscaler on the local provider: a control loop in the agent resizes the target MIG from the
load the local load balancer measures (in-flight requests, or requests per second for RATE
backends), between min and max replicas, honouring coolDownPeriodSec and scaleInControl. The
decision is the pure function `agent.autoscaling.decide`."""

from __future__ import annotations

from typing import ClassVar

from mlplane.model.compute import Autoscaler, ResourceSpec

from .client import LocalResourceProvider


class LocalAutoscalers(LocalResourceProvider[Autoscaler]):
    KIND: ClassVar[str] = Autoscaler.KIND
    SPEC: ClassVar[type[ResourceSpec]] = Autoscaler
