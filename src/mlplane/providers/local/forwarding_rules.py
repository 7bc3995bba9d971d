"""ForwardingRule on the local provider: a load-balancer listener on 127.0.0.1:`portRange`,
hosted in the agent's event loop. A port already in use fails the create operation with an error
naming the port."""

from __future__ import annotations

from typing import ClassVar

from mlplane.model.compute import ForwardingRule, ResourceSpec

from .client import LocalResourceProvider


class LocalForwardingRules(LocalResourceProvider[ForwardingRule]):
    KIND: ClassVar[str] = ForwardingRule.KIND
    SPEC: ClassVar[type[ResourceSpec]] = ForwardingRule
