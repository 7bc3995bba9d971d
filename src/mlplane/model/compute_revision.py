"""Serving bundles: a service revision (template + MIG + autoscaler + health check + backend
service), its route in the URL map, and the once-per-project load-balancer front end."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlplane.model.compute_base import NAME_RE, ResourceSpec
from mlplane.model.compute_endpoints import (
    EndpointsConfig,
    EndpointsService,
    EndpointsTarget,
    OpenApiDocument,
    OpenApiInfo,
    RemoveApiPaths,
    SetApiPaths,
    model_paths,
)
from mlplane.model.compute_instances import (
    AccessConfig,
    AttachedDisk,
    AttachedDiskInitializeParams,
    InstanceProperties,
    InstanceTemplate,
    Metadata,
    MetadataItem,
    NetworkInterface,
    ServiceAccount,
    Tags,
)
from mlplane.model.compute_lb import (
    DetachBackendService,
    ForwardingRule,
    HostRule,
    PathMatcher,
    SetRoute,
    TargetHttpProxy,
    UrlMap,
    WeightedBackendService,
)
from mlplane.model.compute_serving import (
    AutoHealingPolicy,
    Autoscaler,
    AutoscalingPolicy,
    Backend,
    BackendService,
    HealthCheck,
    HttpHealthCheck,
    InstanceGroupManager,
    NamedPort,
    ScaleInControl,
    UtilizationTarget,
)
from mlplane.model.routes import model_prefix

# `{service}-{rev}` <= 52 (gcp-reference §1.1): every `-tmpl`/`-mig`/... name fits in 63 and the
# MIG base name (`srv-` + the prefix, <= 56) fits in 58.
REVISION_PREFIX_MAX = 52
# Serving replicas are named `srv-{service}-{rev}-xxxx`: the fixed prefix lets IAM conditions hold
# the deployer's instance permissions on serving VMs only (docs/decisions/0900).
REPLICA_PREFIX = "srv-"
URL_MAP = "mlplane-urlmap"
PATH_MATCHER = "models"
FRONTEND_STACK = "bootstrap/frontend"


@dataclass(frozen=True)
class RevisionNames:
    service: str
    revision: str

    @property
    def prefix(self) -> str:
        return f"{self.service}-{self.revision}"

    @property
    def base_instance_name(self) -> str:
        return f"{REPLICA_PREFIX}{self.prefix}"

    @property
    def template(self) -> str:
        return f"{self.prefix}-tmpl"

    @property
    def instance_group_manager(self) -> str:
        return f"{self.prefix}-mig"

    @property
    def autoscaler(self) -> str:
        return f"{self.prefix}-as"

    @property
    def health_check(self) -> str:
        return f"{self.prefix}-hc"

    @property
    def backend_service(self) -> str:
        return f"{self.prefix}-bes"

    @property
    def stack(self) -> str:
        return f"serving/{self.service}/{self.revision}"


def revision_names(service: str, revision: str) -> RevisionNames:
    """Names of a revision's resources; raises ValueError naming the rule that failed."""
    names = RevisionNames(service, revision)
    if not NAME_RE.fullmatch(service):
        raise ValueError(f"service name '{service}' must match [a-z]([-a-z0-9]*[a-z0-9])?")
    if not revision or not all(c.isdigit() or ("a" <= c <= "z") or c == "-" for c in revision):
        raise ValueError(f"revision '{revision}' must be lowercase letters, digits and dashes")
    if not NAME_RE.fullmatch(names.prefix) or len(names.prefix) > REVISION_PREFIX_MAX:
        raise ValueError(
            f"'{names.prefix}' ({len(names.prefix)} chars) must be at most {REVISION_PREFIX_MAX} "
            "characters so that '-tmpl', '-mig', ... names fit in 63 and the MIG base name in 58"
        )
    return names


class RevisionSettings(BaseModel):
    """What a service revision runs on and how it scales (user-facing inputs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zone: str
    service_account: str
    machine_type: str = "e2-standard-2"
    source_image: str = "projects/cos-cloud/global/images/family/cos-stable"
    disk_size_gb: int = Field(default=20, ge=10)
    network: str = "global/networks/default"
    external_ip: bool = False
    port: int = Field(default=8080, ge=1, le=65535)
    health_path: str = "/healthz"
    check_interval_sec: int = 10
    timeout_sec: int = 5
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3
    initial_delay_sec: int = Field(default=300, ge=0, le=3600)
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=3, ge=1, le=1000)
    cool_down_period_sec: int = 60
    utilization_target: float = Field(default=0.8, gt=0.0, le=1.0)
    scale_in_control: ScaleInControl | None = None
    request_timeout_sec: int = 30
    metadata: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    tags: tuple[str, ...] = ("mlplane-serving",)

    @model_validator(mode="after")
    def _replicas(self) -> RevisionSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self


@dataclass(frozen=True)
class RevisionBundle:
    """The five resources of one service revision, all in stack `serving/{service}/{rev}`."""

    names: RevisionNames
    health_check: HealthCheck
    template: InstanceTemplate
    instance_group_manager: InstanceGroupManager
    autoscaler: Autoscaler
    backend_service: BackendService

    @property
    def stack(self) -> str:
        return self.names.stack

    @property
    def resources(self) -> tuple[ResourceSpec, ...]:
        return (
            self.health_check,
            self.template,
            self.instance_group_manager,
            self.autoscaler,
            self.backend_service,
        )


def revision_bundle(service: str, revision: str, settings: RevisionSettings) -> RevisionBundle:
    """Build the typed specs of a service revision (raises ValueError on bad names/settings)."""
    n = revision_names(service, revision)
    hc = HealthCheck(
        name=n.health_check,
        http_health_check=HttpHealthCheck(port=settings.port, request_path=settings.health_path),
        check_interval_sec=settings.check_interval_sec,
        timeout_sec=settings.timeout_sec,
        healthy_threshold=settings.healthy_threshold,
        unhealthy_threshold=settings.unhealthy_threshold,
    )
    labels = {**settings.labels, "mlplane-service": service, "mlplane-rev": revision}
    items = tuple(MetadataItem(key=k, value=v) for k, v in sorted(settings.metadata.items()))
    access = (AccessConfig(),) if settings.external_ip else ()
    template = InstanceTemplate(
        name=n.template,
        properties=InstanceProperties(
            machine_type=settings.machine_type,
            disks=(
                AttachedDisk(
                    boot=True,
                    initialize_params=AttachedDiskInitializeParams(
                        source_image=settings.source_image, disk_size_gb=settings.disk_size_gb
                    ),
                ),
            ),
            network_interfaces=(NetworkInterface(network=settings.network, access_configs=access),),
            service_accounts=(ServiceAccount(email=settings.service_account),),
            metadata=Metadata(items=items) if items else None,
            tags=Tags(items=settings.tags) if settings.tags else None,
            labels=labels,
        ),
    )
    mig = InstanceGroupManager(
        name=n.instance_group_manager,
        zone=settings.zone,
        base_instance_name=n.base_instance_name,
        instance_template=template.link,
        target_size=max(settings.min_replicas, 1),
        named_ports=(NamedPort(name="http", port=settings.port),),
        auto_healing_policies=(
            AutoHealingPolicy(health_check=hc.link, initial_delay_sec=settings.initial_delay_sec),
        ),
    )
    autoscaler = Autoscaler(
        name=n.autoscaler,
        zone=settings.zone,
        target=mig.link,
        autoscaling_policy=AutoscalingPolicy(
            min_num_replicas=settings.min_replicas,
            max_num_replicas=settings.max_replicas,
            cool_down_period_sec=settings.cool_down_period_sec,
            load_balancing_utilization=UtilizationTarget(
                utilization_target=settings.utilization_target
            ),
            mode="ON",
            scale_in_control=settings.scale_in_control,
        ),
    )
    bes = BackendService(
        name=n.backend_service,
        port_name="http",
        timeout_sec=settings.request_timeout_sec,
        health_checks=(hc.link,),
        backends=(
            Backend(group=mig.instance_group_link, max_utilization=0.8, capacity_scaler=1.0),
        ),
    )
    return RevisionBundle(n, hc, template, mig, autoscaler, bes)


def route_to(
    service: str,
    backends: Sequence[tuple[RevisionBundle, int]],
    *,
    url_map: str = URL_MAP,
    path_matcher: str = PATH_MATCHER,
    prefix: str | None = None,
) -> SetRoute:
    """The URL-map change sending `service`'s traffic to revisions with weights (0-1000)."""
    return SetRoute(
        url_map=url_map,
        path_matcher=path_matcher,
        prefix=prefix or model_prefix(service),
        backends=tuple(
            WeightedBackendService(backend_service=b.backend_service.link, weight=w)
            for b, w in backends
        ),
        description=f"mlplane route for {service}",
    )


def detach(bundle: RevisionBundle, *, url_map: str = URL_MAP) -> DetachBackendService:
    """The URL-map change removing every route to a revision (before its teardown)."""
    return DetachBackendService(url_map=url_map, backend_service=bundle.backend_service.link)


def api_paths(service: str, endpoints_service: str) -> SetApiPaths:
    """The OpenAPI change exposing a served model's paths."""
    op_prefix = "".join(
        part.capitalize() if i else part for i, part in enumerate(service.split("-"))
    )
    return SetApiPaths(
        service=endpoints_service, paths=dict(model_paths(model_prefix(service), op_prefix))
    )


def remove_api_paths(service: str, endpoints_service: str) -> RemoveApiPaths:
    return RemoveApiPaths(service=endpoints_service, prefix=model_prefix(service))


@dataclass(frozen=True)
class Frontend:
    """Passive load-balancer front end, created once per project (stack `bootstrap/frontend`)."""

    default_backend: BackendService
    url_map: UrlMap
    proxy: TargetHttpProxy
    forwarding_rule: ForwardingRule
    endpoints_service: EndpointsService | None
    endpoints_config: EndpointsConfig | None

    @property
    def resources(self) -> tuple[ResourceSpec, ...]:
        out: list[ResourceSpec] = [
            self.default_backend,
            self.url_map,
            self.proxy,
            self.forwarding_rule,
        ]
        if self.endpoints_service and self.endpoints_config:
            out += [self.endpoints_service, self.endpoints_config]
        return tuple(out)


def frontend(
    *,
    url_map: str = URL_MAP,
    endpoints_service: str | None = None,
    ip_address: str | None = None,
    version: str = "1",
) -> Frontend:
    """The bootstrap front end: default backend, URL map, proxy, forwarding rule, Endpoints."""
    default = BackendService(name="mlplane-default-bes")
    umap = UrlMap(
        name=url_map,
        default_service=default.link,
        host_rules=(HostRule(hosts=("*",), path_matcher=PATH_MATCHER),),
        path_matchers=(PathMatcher(name=PATH_MATCHER, default_service=default.link),),
    )
    proxy = TargetHttpProxy(name="mlplane-http-proxy", url_map=umap.link)
    rule = ForwardingRule(name="mlplane-http-fr", target=proxy.link, ip_address=ip_address)
    service = config = None
    if endpoints_service:
        service = EndpointsService(name=endpoints_service)
        targets = (
            (EndpointsTarget(name=endpoints_service, target=ip_address),) if ip_address else ()
        )
        config = EndpointsConfig(
            name=endpoints_service,
            openapi=OpenApiDocument(
                info=OpenApiInfo(title="mlplane models", version=version),
                host=endpoints_service,
                x_google_endpoints=targets,
            ),
        )
    return Frontend(default, umap, proxy, rule, service, config)


__all__ = [
    "FRONTEND_STACK",
    "PATH_MATCHER",
    "REPLICA_PREFIX",
    "REVISION_PREFIX_MAX",
    "URL_MAP",
    "Frontend",
    "RevisionBundle",
    "RevisionNames",
    "RevisionSettings",
    "api_paths",
    "detach",
    "frontend",
    "model_prefix",
    "remove_api_paths",
    "revision_bundle",
    "revision_names",
    "route_to",
]
