"""InstanceGroupManager on the local provider: N replica processes of its template, each on its
own free port on 127.0.0.1 (env `PORT`), autohealed through its health check after
`initialDelaySec`; replicas that exit or fail the check are recreated under the same name.
Deleting the MIG stops and reaps its processes and frees their ports. As on GCP, the create
operation is DONE when the group exists, not when its replicas are up: use
`list_managed_instances` to see them come up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from mlplane.model.compute import InstanceGroupManager, ResourceKey, ResourceSpec
from mlplane.providers.base import ManagedInstance, SupportsManagedInstances

from .client import LocalResourceProvider


class LocalInstanceGroupManagers(
    LocalResourceProvider[InstanceGroupManager], SupportsManagedInstances
):
    KIND: ClassVar[str] = InstanceGroupManager.KIND
    SPEC: ClassVar[type[ResourceSpec]] = InstanceGroupManager

    def list_managed_instances(self, key: ResourceKey) -> Sequence[ManagedInstance]:
        return [
            ManagedInstance(r.name, r.status, r.health, _action(r.status))
            for r in self.client.managed_instances(key.name)
        ]


def _action(status: str) -> str:
    return {"STARTING": "CREATING", "STOPPING": "DELETING", "RECREATING": "RECREATING"}.get(
        status, "NONE"
    )
