"""Instance on the local provider: one supervised process (notebook, training job) running the
command of its metadata (or of its source template) as its service account, with its own
metadata endpoint. Deleting it stops the process (SIGTERM, then SIGKILL). A workload may delete
its own instance with its metadata token when the IAM model allows it (e.g. training VMs named
`train-*` running as training-adhoc)."""

from __future__ import annotations

from typing import ClassVar

from mlplane.model.compute import Instance, ResourceSpec

from .client import LocalResourceProvider


class LocalInstances(LocalResourceProvider[Instance]):
    KIND: ClassVar[str] = Instance.KIND
    SPEC: ClassVar[type[ResourceSpec]] = Instance
