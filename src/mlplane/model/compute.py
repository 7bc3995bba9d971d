"""Typed Compute Engine (and Endpoints) specs mlplane manages, and their registry by kind.

Adding a kind: define it in a `compute_*.py` module (KIND, COLLECTION, LIFECYCLE, MUTABILITY,
PERMISSIONS, `references()`), then add it to SPEC_TYPES below; a change type goes in CHANGE_TYPES.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from mlplane.model.compute_base import (
    ApiModel,
    Change,
    Lifecycle,
    Mutability,
    PermissionCheck,
    ResourceKey,
    ResourceSpec,
    Verb,
    check_name,
    link_key,
    parse_link,
    permissions_of,
    qualify_link,
)
from mlplane.model.compute_endpoints import (
    EndpointsConfig,
    EndpointsService,
    OpenApiDocument,
    OpenApiInfo,
    OpenApiOperation,
    RemoveApiPaths,
    SetApiPaths,
)
from mlplane.model.compute_instances import (
    AttachedDisk,
    AttachedDiskInitializeParams,
    Instance,
    InstanceProperties,
    InstanceTemplate,
    Metadata,
    MetadataItem,
    NetworkInterface,
    Scheduling,
    ServiceAccount,
    Tags,
)
from mlplane.model.compute_lb import (
    DetachBackendService,
    ForwardingRule,
    HostRule,
    HttpRouteAction,
    HttpRouteRule,
    HttpRouteRuleMatch,
    PathMatcher,
    PathRule,
    RemoveRoute,
    RouteChange,
    SetRoute,
    TargetHttpProxy,
    UrlMap,
    WeightedBackendService,
)
from mlplane.model.compute_revision import (
    FRONTEND_STACK,
    PATH_MATCHER,
    URL_MAP,
    Frontend,
    RevisionBundle,
    RevisionNames,
    RevisionSettings,
    api_paths,
    detach,
    frontend,
    model_prefix,
    remove_api_paths,
    revision_bundle,
    revision_names,
    route_to,
)
from mlplane.model.compute_serving import (
    AutoHealingPolicy,
    Autoscaler,
    AutoscalingPolicy,
    Backend,
    BackendService,
    FixedOrPercent,
    HealthCheck,
    HttpHealthCheck,
    InstanceGroupManager,
    NamedPort,
    ScaleInControl,
    UtilizationTarget,
)

SPEC_TYPES: Mapping[str, type[ResourceSpec]] = {
    t.KIND: t
    for t in (
        InstanceTemplate,
        InstanceGroupManager,
        Autoscaler,
        HealthCheck,
        BackendService,
        Instance,
        UrlMap,
        TargetHttpProxy,
        ForwardingRule,
        EndpointsService,
        EndpointsConfig,
    )
}

AnyChange = Annotated[
    SetRoute | RemoveRoute | DetachBackendService | SetApiPaths | RemoveApiPaths,
    Field(discriminator="change"),
]
_CHANGES: TypeAdapter[AnyChange] = TypeAdapter(AnyChange)


def spec_type(kind: str) -> type[ResourceSpec]:
    try:
        return SPEC_TYPES[kind]
    except KeyError:
        raise ValueError(
            f"unknown resource kind '{kind}' (one of {', '.join(SPEC_TYPES)})"
        ) from None


def spec_from_data(kind: str, data: Mapping[str, Any]) -> ResourceSpec:
    """Rebuild a spec from its stored form (`spec_to_data`)."""
    return spec_type(kind).model_validate(data)


def spec_to_data(spec: ResourceSpec) -> dict[str, Any]:
    """Lossless stored form (explicit None kept: it may differ from a field's default)."""
    data: dict[str, Any] = spec.model_dump(mode="json")
    return data


def change_from_data(data: Mapping[str, Any]) -> Change:
    change: Change = _CHANGES.validate_python(data)
    return change


def change_to_data(change: Change) -> dict[str, Any]:
    data: dict[str, Any] = change.model_dump(mode="json")
    return data


ALL_PERMISSIONS = permissions_of(tuple(SPEC_TYPES.values()))

__all__ = [
    "ALL_PERMISSIONS",
    "FRONTEND_STACK",
    "PATH_MATCHER",
    "SPEC_TYPES",
    "URL_MAP",
    "AnyChange",
    "ApiModel",
    "AttachedDisk",
    "AttachedDiskInitializeParams",
    "AutoHealingPolicy",
    "Autoscaler",
    "AutoscalingPolicy",
    "Backend",
    "BackendService",
    "Change",
    "DetachBackendService",
    "EndpointsConfig",
    "EndpointsService",
    "FixedOrPercent",
    "ForwardingRule",
    "Frontend",
    "HealthCheck",
    "HostRule",
    "HttpHealthCheck",
    "HttpRouteAction",
    "HttpRouteRule",
    "HttpRouteRuleMatch",
    "Instance",
    "InstanceGroupManager",
    "InstanceProperties",
    "InstanceTemplate",
    "Lifecycle",
    "Metadata",
    "MetadataItem",
    "Mutability",
    "NamedPort",
    "NetworkInterface",
    "OpenApiDocument",
    "OpenApiInfo",
    "OpenApiOperation",
    "PathMatcher",
    "PathRule",
    "PermissionCheck",
    "RemoveApiPaths",
    "RemoveRoute",
    "ResourceKey",
    "ResourceSpec",
    "RevisionBundle",
    "RevisionNames",
    "RevisionSettings",
    "RouteChange",
    "ScaleInControl",
    "Scheduling",
    "ServiceAccount",
    "SetApiPaths",
    "SetRoute",
    "Tags",
    "TargetHttpProxy",
    "UrlMap",
    "UtilizationTarget",
    "Verb",
    "WeightedBackendService",
    "api_paths",
    "change_from_data",
    "change_to_data",
    "check_name",
    "detach",
    "frontend",
    "link_key",
    "model_prefix",
    "parse_link",
    "qualify_link",
    "remove_api_paths",
    "revision_bundle",
    "revision_names",
    "route_to",
    "spec_from_data",
    "spec_to_data",
    "spec_type",
]
