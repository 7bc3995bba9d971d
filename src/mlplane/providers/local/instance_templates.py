"""InstanceTemplate on the local provider: what each replica or instance process runs (command,
environment, model artifact; see `runtime`) and as which service account. Immutable, as on GCP:
the agent refuses an update (make a new template per revision) and a delete while a MIG or an
instance uses it."""

from __future__ import annotations

from typing import ClassVar

from mlplane.model.compute import InstanceTemplate, ResourceSpec

from .client import LocalResourceProvider


class LocalInstanceTemplates(LocalResourceProvider[InstanceTemplate]):
    KIND: ClassVar[str] = InstanceTemplate.KIND
    SPEC: ClassVar[type[ResourceSpec]] = InstanceTemplate
