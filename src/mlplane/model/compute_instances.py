"""VM-shaped kinds: InstanceTemplate (immutable) and Instance, plus their shared parts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PlainSerializer, field_validator

from mlplane.model.api_io import last_segment
from mlplane.model.compute_base import (
    ApiModel,
    Lifecycle,
    Mutability,
    PermissionCheck,
    ResourceKey,
    ResourceLink,
    ResourceSpec,
    Verb,
    link_key,
    zonal_link,
)
from mlplane.model.refs import ResourceRef

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_METADATA_KEY_RE = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_METADATA_VALUE_MAX = 256 * 1024

# int64 fields travel as JSON strings in the Compute API (the client sends "50").
Int64 = Annotated[int, PlainSerializer(str, return_type=str, when_used="json")]


class AttachedDiskInitializeParams(ApiModel):
    source_image: str
    disk_size_gb: Int64 | None = Field(default=None, ge=10, le=65536)
    disk_type: str | None = None


class AttachedDisk(ApiModel):
    boot: bool = False
    auto_delete: bool = True
    initialize_params: AttachedDiskInitializeParams | None = None


class AccessConfig(ApiModel):
    type: Literal["ONE_TO_ONE_NAT"] = "ONE_TO_ONE_NAT"
    name: str = "External NAT"


class NetworkInterface(ApiModel):
    network: ResourceLink = "global/networks/default"
    subnetwork: ResourceLink | None = None
    access_configs: tuple[AccessConfig, ...] = ()


class ServiceAccount(ApiModel):
    email: str
    scopes: tuple[str, ...] = (CLOUD_PLATFORM_SCOPE,)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        if "@" not in v:
            raise ValueError(f"service account '{v}' is not an email address")
        return v


class MetadataItem(ApiModel):
    key: str
    value: str

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not _METADATA_KEY_RE.fullmatch(v):
            raise ValueError(f"metadata key '{v}' must match [a-zA-Z0-9-_]{{1,128}}")
        return v

    @field_validator("value")
    @classmethod
    def _value(cls, v: str) -> str:
        if len(v.encode()) > _METADATA_VALUE_MAX:
            raise ValueError("metadata value exceeds 256 KiB")
        return v


class Metadata(ApiModel):
    items: tuple[MetadataItem, ...] = ()


class Tags(ApiModel):
    items: tuple[str, ...] = ()


class Scheduling(ApiModel):
    """What Compute Engine does when the host of a VM fails or is maintained: with
    `automaticRestart` (Google's default: true) the VM is started again; without, it stays
    TERMINATED. The local agent applies it when it restarts after it was killed."""

    automatic_restart: bool | None = None
    on_host_maintenance: Literal["MIGRATE", "TERMINATE"] | None = None
    preemptible: bool | None = None

    @property
    def restarts(self) -> bool:
        """Whether the VM comes back after a host failure (preemptible VMs never do)."""
        return self.automatic_restart is not False and not self.preemptible


class InstanceProperties(ApiModel):
    machine_type: str
    disks: tuple[AttachedDisk, ...] = ()
    network_interfaces: tuple[NetworkInterface, ...] = (NetworkInterface(),)
    service_accounts: tuple[ServiceAccount, ...] = ()
    metadata: Metadata | None = None
    tags: Tags | None = None
    labels: dict[str, str] | None = None

    @field_validator("machine_type")
    @classmethod
    def _machine_type(cls, v: str) -> str:
        if "/" in v:
            raise ValueError(
                f"machineType '{v}': an instance template takes the machine type NAME only "
                "(e.g. 'n1-standard-4'); a URL makes the API fail with INTERNAL_ERROR"
            )
        return v


def _act_as(accounts: tuple[ServiceAccount, ...], project: str) -> tuple[PermissionCheck, ...]:
    return tuple(
        PermissionCheck(
            ("iam.serviceAccounts.actAs",), ResourceRef("serviceAccount", sa.email, project)
        )
        for sa in accounts
    )


class InstanceTemplate(ResourceSpec):
    """`compute.instanceTemplates`: immutable, one per service revision."""

    KIND: ClassVar[str] = "instanceTemplate"
    COLLECTION: ClassVar[str] = "instanceTemplates"
    API_SCHEMA: ClassVar[str] = "InstanceTemplate"
    LIFECYCLE: ClassVar[Lifecycle] = Lifecycle.ACTIVE
    MUTABILITY: ClassVar[Mutability] = Mutability.IMMUTABLE
    PERMISSIONS: ClassVar[dict[Verb, tuple[str, ...]]] = {
        Verb.GET: ("compute.instanceTemplates.get",),
        Verb.CREATE: (
            "compute.instanceTemplates.create",
            "compute.instanceTemplates.get",
            "compute.globalOperations.get",
        ),
        Verb.DELETE: (
            "compute.instanceTemplates.delete",
            "compute.instanceTemplates.get",
            "compute.globalOperations.get",
        ),
    }

    properties: InstanceProperties

    def extra_permission_checks(self, verb: Verb, project: str) -> tuple[PermissionCheck, ...]:
        return _act_as(self.properties.service_accounts, project) if verb is Verb.CREATE else ()


class Instance(ResourceSpec):
    """`compute.instances`: notebook and training VMs (replaced, never edited in place)."""

    KIND: ClassVar[str] = "instance"
    COLLECTION: ClassVar[str] = "instances"
    API_SCHEMA: ClassVar[str] = "Instance"
    READ_BACK: ClassVar[frozenset[str]] = frozenset({"zone"})
    LIFECYCLE: ClassVar[Lifecycle] = Lifecycle.ACTIVE
    MUTABILITY: ClassVar[Mutability] = Mutability.IMMUTABLE
    PATH_FIELDS: ClassVar[frozenset[str]] = frozenset({"zone"})
    PERMISSIONS: ClassVar[dict[Verb, tuple[str, ...]]] = {
        Verb.GET: ("compute.instances.get",),
        Verb.CREATE: (
            "compute.instances.create",
            "compute.instances.get",
            "compute.disks.create",
            "compute.subnetworks.use",
            "compute.instances.setMetadata",
            "compute.instances.setLabels",
            "compute.instances.setTags",
            "compute.zoneOperations.get",
        ),
        Verb.DELETE: (
            "compute.instances.delete",
            "compute.instances.get",
            "compute.zoneOperations.get",
        ),
    }

    zone: str
    machine_type: str
    disks: tuple[AttachedDisk, ...] = ()
    network_interfaces: tuple[NetworkInterface, ...] = (NetworkInterface(),)
    service_accounts: tuple[ServiceAccount, ...] = ()
    metadata: Metadata | None = None
    tags: Tags | None = None
    labels: dict[str, str] | None = None
    scheduling: Scheduling | None = None
    source_instance_template: ResourceLink | None = None

    @property
    def link(self) -> str:
        return zonal_link(self.zone, self.COLLECTION, self.name)

    def references(self) -> tuple[ResourceKey, ...]:
        key = link_key(self.source_instance_template)
        return (key,) if key else ()

    def to_api(
        self,
        project: str | None = None,
        *,
        fingerprint: str | None = None,
        base: str | None = None,
    ) -> dict[str, Any]:
        out = super().to_api(project, fingerprint=fingerprint, base=base)
        # instances.insert takes a machine-type URL (templates take the bare name).
        out["machineType"] = f"zones/{self.zone}/machineTypes/{self.machine_type}"
        return out

    @classmethod
    def api_fields(cls, body: Mapping[str, Any]) -> dict[str, Any]:
        data = super().api_fields(body)
        if "machineType" in data:
            data["machineType"] = last_segment(data["machineType"])
        return data

    def extra_permission_checks(self, verb: Verb, project: str) -> tuple[PermissionCheck, ...]:
        if verb is not Verb.CREATE:
            return ()
        checks: list[PermissionCheck] = []
        ref = ResourceRef(self.KIND, self.name, project)
        if any(ni.access_configs for ni in self.network_interfaces):
            checks.append(PermissionCheck(("compute.subnetworks.useExternalIp",), ref))
        if self.service_accounts:
            checks.append(PermissionCheck(("compute.instances.setServiceAccount",), ref))
        if self.source_instance_template:
            checks.append(PermissionCheck(("compute.instanceTemplates.useReadOnly",), ref))
        return tuple(checks) + _act_as(self.service_accounts, project)
