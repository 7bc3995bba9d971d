"""Serving-revision kinds: InstanceGroupManager, Autoscaler, HealthCheck, BackendService."""

from __future__ import annotations

import re
from typing import ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from mlplane.model.compute_base import (
    BASE_INSTANCE_NAME_MAX,
    ApiModel,
    Lifecycle,
    Mutability,
    ResourceKey,
    ResourceLink,
    ResourceSpec,
    Verb,
    link_key,
    parse_link,
    zonal_link,
)

# MIG baseInstanceName: <= 58 chars; a trailing `-###` asks for sequential numbering.
_BASE_NAME_RE = re.compile(r"[a-z](([-a-z0-9]{0,57})|([-a-z0-9]{0,51}-#{1,10}(\[[0-9]{1,10}\])?))")


class NamedPort(ApiModel):
    name: str
    port: int = Field(ge=1, le=65535)


class AutoHealingPolicy(ApiModel):
    health_check: ResourceLink
    initial_delay_sec: int = Field(default=0, ge=0, le=3600)


class InstanceGroupManager(ResourceSpec):
    """`compute.instanceGroupManagers` (zonal): keeps N replicas of a template, autoheals them."""

    KIND: ClassVar[str] = "instanceGroupManager"
    COLLECTION: ClassVar[str] = "instanceGroupManagers"
    API_SCHEMA: ClassVar[str] = "InstanceGroupManager"
    # namedPorts is output-only on a MIG (it reflects its instance group's): set with
    # instanceGroups.setNamedPorts after insert, read back from the MIG.
    BODY_EXCLUDE: ClassVar[frozenset[str]] = frozenset({"named_ports"})
    READ_BACK: ClassVar[frozenset[str]] = frozenset({"zone", "named_ports"})
    LIFECYCLE: ClassVar[Lifecycle] = Lifecycle.ACTIVE
    MUTABILITY: ClassVar[Mutability] = Mutability.DYNAMIC
    FINGERPRINTED: ClassVar[bool] = True
    REPLACE_FIELDS: ClassVar[frozenset[str]] = frozenset({"zone", "base_instance_name"})
    PATH_FIELDS: ClassVar[frozenset[str]] = frozenset({"zone"})
    _USES: ClassVar[tuple[str, ...]] = (
        "compute.instanceTemplates.useReadOnly",
        "compute.healthChecks.useReadOnly",
        "compute.disks.create",
        "compute.images.useReadOnly",
        "compute.instances.create",
        "compute.instances.setMetadata",
        "compute.subnetworks.use",
        "compute.zoneOperations.get",
    )
    PERMISSIONS: ClassVar[dict[Verb, tuple[str, ...]]] = {
        Verb.GET: ("compute.instanceGroupManagers.get",),
        Verb.CREATE: (
            "compute.instanceGroupManagers.create",
            "compute.instanceGroupManagers.get",
            "compute.instanceGroups.update",  # instanceGroups.setNamedPorts after insert
            *_USES,
        ),
        Verb.UPDATE: (
            "compute.instanceGroupManagers.update",
            "compute.instanceGroupManagers.get",
            *_USES,
        ),
        Verb.DELETE: (
            "compute.instanceGroupManagers.delete",
            "compute.instanceGroupManagers.get",
            "compute.instanceGroups.delete",
            "compute.zoneOperations.get",
        ),
    }

    zone: str
    base_instance_name: str
    instance_template: ResourceLink
    target_size: int = Field(default=1, ge=0, le=1000)
    named_ports: tuple[NamedPort, ...] = ()
    auto_healing_policies: tuple[AutoHealingPolicy, ...] = Field(default=(), max_length=1)

    @field_validator("base_instance_name")
    @classmethod
    def _base_name(cls, v: str) -> str:
        if len(v) > BASE_INSTANCE_NAME_MAX or not _BASE_NAME_RE.fullmatch(v):
            raise ValueError(
                f"baseInstanceName '{v}' must be at most {BASE_INSTANCE_NAME_MAX} characters of "
                "[-a-z0-9], starting with a letter (the MIG appends '-xxxx' to it)"
            )
        return v

    @property
    def link(self) -> str:
        return zonal_link(self.zone, self.COLLECTION, self.name)

    @property
    def instance_group_link(self) -> str:
        """The managed instance group (backend of a backend service); same name as the MIG."""
        return zonal_link(self.zone, "instanceGroups", self.name)

    def references(self) -> tuple[ResourceKey, ...]:
        links = (self.instance_template, *(p.health_check for p in self.auto_healing_policies))
        return tuple(k for k in map(link_key, links) if k)


class FixedOrPercent(ApiModel):
    fixed: int | None = Field(default=None, ge=0)
    percent: int | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.fixed is None) == (self.percent is None):
            raise ValueError("set exactly one of fixed or percent")
        return self


class ScaleInControl(ApiModel):
    max_scaled_in_replicas: FixedOrPercent
    time_window_sec: int = Field(ge=60, le=3600)


class UtilizationTarget(ApiModel):
    utilization_target: float = Field(gt=0.0, le=1.0)


class AutoscalingPolicy(ApiModel):
    min_num_replicas: int | None = Field(default=None, ge=0)
    max_num_replicas: int = Field(ge=1, le=1000)
    cool_down_period_sec: int | None = Field(default=None, ge=0)
    cpu_utilization: UtilizationTarget | None = None
    load_balancing_utilization: UtilizationTarget | None = None
    mode: Literal["ON", "OFF", "ONLY_SCALE_OUT"] | None = None
    scale_in_control: ScaleInControl | None = None
    stabilization_period_sec: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_num_replicas is not None and self.min_num_replicas > self.max_num_replicas:
            raise ValueError(
                f"minNumReplicas ({self.min_num_replicas}) exceeds maxNumReplicas "
                f"({self.max_num_replicas})"
            )
        return self


class Autoscaler(ResourceSpec):
    """`compute.autoscalers` (zonal): owns the target MIG's size once attached."""

    KIND: ClassVar[str] = "autoscaler"
    COLLECTION: ClassVar[str] = "autoscalers"
    API_SCHEMA: ClassVar[str] = "Autoscaler"
    READ_BACK: ClassVar[frozenset[str]] = frozenset({"zone"})
    LIFECYCLE: ClassVar[Lifecycle] = Lifecycle.ACTIVE
    MUTABILITY: ClassVar[Mutability] = Mutability.DYNAMIC
    REPLACE_FIELDS: ClassVar[frozenset[str]] = frozenset({"zone", "target"})
    PATH_FIELDS: ClassVar[frozenset[str]] = frozenset({"zone"})
    PERMISSIONS: ClassVar[dict[Verb, tuple[str, ...]]] = {
        Verb.GET: ("compute.autoscalers.get",),
        Verb.CREATE: (
            "compute.autoscalers.create",
            "compute.autoscalers.get",
            "compute.instanceGroupManagers.use",
            "compute.zoneOperations.get",
        ),
        Verb.UPDATE: (
            "compute.autoscalers.update",
            "compute.autoscalers.get",
            "compute.instanceGroupManagers.use",
            "compute.zoneOperations.get",
        ),
        Verb.DELETE: (
            "compute.autoscalers.delete",
            "compute.autoscalers.get",
            "compute.zoneOperations.get",
        ),
    }

    zone: str
    target: ResourceLink
    autoscaling_policy: AutoscalingPolicy

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        if parse_link(v).collection != "instanceGroupManagers":
            raise ValueError(f"autoscaler target '{v}' must be an instanceGroupManagers link")
        return v

    @property
    def link(self) -> str:
        return zonal_link(self.zone, self.COLLECTION, self.name)

    def references(self) -> tuple[ResourceKey, ...]:
        key = link_key(self.target)
        return (key,) if key else ()


class HttpHealthCheck(ApiModel):
    port: int | None = Field(default=None, ge=1, le=65535)
    port_specification: Literal["USE_FIXED_PORT", "USE_NAMED_PORT", "USE_SERVING_PORT"] | None = (
        None
    )
    request_path: str = "/"
    host: str | None = None

    @field_validator("request_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"requestPath '{v}' must start with '/'")
        return v


class HealthCheck(ResourceSpec):
    """`compute.healthChecks` (global, HTTP): used by MIG autohealing and the backend service."""

    KIND: ClassVar[str] = "healthCheck"
    COLLECTION: ClassVar[str] = "healthChecks"
    API_SCHEMA: ClassVar[str] = "HealthCheck"
    LIFECYCLE: ClassVar[Lifecycle] = Lifecycle.ACTIVE
    MUTABILITY: ClassVar[Mutability] = Mutability.DYNAMIC
    REPLACE_FIELDS: ClassVar[frozenset[str]] = frozenset({"type"})
    PERMISSIONS: ClassVar[dict[Verb, tuple[str, ...]]] = {
        Verb.GET: ("compute.healthChecks.get",),
        Verb.CREATE: (
            "compute.healthChecks.create",
            "compute.healthChecks.get",
            "compute.globalOperations.get",
        ),
        Verb.UPDATE: (
            "compute.healthChecks.update",
            "compute.healthChecks.get",
            "compute.globalOperations.get",
        ),
        Verb.DELETE: (
            "compute.healthChecks.delete",
            "compute.healthChecks.get",
            "compute.globalOperations.get",
        ),
    }

    type: Literal["HTTP"] = "HTTP"
    http_health_check: HttpHealthCheck
    check_interval_sec: int = Field(default=5, ge=1, le=300)
    timeout_sec: int = Field(default=5, ge=1, le=300)
    healthy_threshold: int = Field(default=2, ge=1, le=10)
    unhealthy_threshold: int = Field(default=2, ge=1, le=10)

    @model_validator(mode="after")
    def _timeout(self) -> Self:
        if self.timeout_sec > self.check_interval_sec:
            raise ValueError(
                f"timeoutSec ({self.timeout_sec}) must be <= checkIntervalSec "
                f"({self.check_interval_sec})"
            )
        return self


class Backend(ApiModel):
    group: ResourceLink
    balancing_mode: Literal["UTILIZATION", "RATE", "CONNECTION"] = "UTILIZATION"
    max_utilization: float | None = Field(default=None, ge=0.0, le=1.0)
    max_rate_per_instance: float | None = Field(default=None, gt=0.0)
    capacity_scaler: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _modes(self) -> Self:
        if self.capacity_scaler is not None and 0.0 < self.capacity_scaler < 0.1:
            raise ValueError("capacityScaler must be 0 (drained) or within [0.1, 1.0]")
        if self.balancing_mode == "RATE" and self.max_rate_per_instance is None:
            raise ValueError("balancingMode RATE needs maxRatePerInstance")
        if parse_link(self.group).collection != "instanceGroups":
            raise ValueError(f"backend group '{self.group}' must be an instanceGroups link")
        return self


class BackendService(ResourceSpec):
    """`compute.backendServices` (global): one per service revision, behind the URL map."""

    KIND: ClassVar[str] = "backendService"
    COLLECTION: ClassVar[str] = "backendServices"
    API_SCHEMA: ClassVar[str] = "BackendService"
    LIFECYCLE: ClassVar[Lifecycle] = Lifecycle.ACTIVE
    MUTABILITY: ClassVar[Mutability] = Mutability.DYNAMIC
    FINGERPRINTED: ClassVar[bool] = True
    REPLACE_FIELDS: ClassVar[frozenset[str]] = frozenset({"load_balancing_scheme"})
    _USES: ClassVar[tuple[str, ...]] = (
        "compute.healthChecks.useReadOnly",
        "compute.instanceGroups.use",
        "compute.globalOperations.get",
    )
    PERMISSIONS: ClassVar[dict[Verb, tuple[str, ...]]] = {
        Verb.GET: ("compute.backendServices.get",),
        Verb.CREATE: ("compute.backendServices.create", "compute.backendServices.get", *_USES),
        Verb.UPDATE: ("compute.backendServices.update", "compute.backendServices.get", *_USES),
        Verb.DELETE: (
            "compute.backendServices.delete",
            "compute.backendServices.get",
            "compute.globalOperations.get",
        ),
    }

    load_balancing_scheme: Literal["EXTERNAL_MANAGED", "EXTERNAL"] = "EXTERNAL_MANAGED"
    protocol: Literal["HTTP", "HTTPS", "HTTP2"] = "HTTP"
    port_name: str | None = "http"
    timeout_sec: int = Field(default=30, ge=1, le=86400)
    health_checks: tuple[ResourceLink, ...] = Field(default=(), max_length=1)
    backends: tuple[Backend, ...] = ()

    @model_validator(mode="after")
    def _health(self) -> Self:
        if self.backends and not self.health_checks:
            raise ValueError("instance-group backends need a health check (healthChecks)")
        return self

    def references(self) -> tuple[ResourceKey, ...]:
        links = (*self.health_checks, *(b.group for b in self.backends))
        return tuple(k for k in map(link_key, links) if k)
