"""Cloud Endpoints: the managed service (static) and its OpenAPI 2.0 config (dynamic)."""

from __future__ import annotations

import base64
import json
import re
from abc import abstractmethod
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, field_validator, model_validator

from mlplane.model.compute_base import (
    ApiModel,
    Change,
    Lifecycle,
    Mutability,
    ResourceKey,
    ResourceSpec,
    Verb,
)

_LABEL_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
HttpMethod = Literal["get", "put", "post", "delete", "options", "head", "patch"]


def check_service_name(name: str) -> str:
    """Endpoints service name = OpenAPI `host`: DNS-style, <= 253 chars, RFC 1035 labels."""
    labels = name.split(".")
    if (
        len(name) > 253
        or len(labels) < 2
        or not all(len(label) <= 63 and _LABEL_RE.fullmatch(label) for label in labels)
    ):
        raise ValueError(
            f"Endpoints service name '{name}' must be a DNS name of lowercase labels "
            "(e.g. 'mlplane.endpoints.my-proj.cloud.goog'), at most 253 characters"
        )
    return name


ServiceName = Annotated[str, AfterValidator(check_service_name)]


class EndpointsService(ResourceSpec):
    """A Service Management managed service; created once at bootstrap, never updated."""

    KIND: ClassVar[str] = "endpointsService"
    COLLECTION: ClassVar[str] = "services"
    API: ClassVar[str] = "servicemanagement"
    API_SCHEMA: ClassVar[str] = "ManagedService"
    LIFECYCLE: ClassVar[Lifecycle] = Lifecycle.PASSIVE
    MUTABILITY: ClassVar[Mutability] = Mutability.STATIC
    PERMISSIONS: ClassVar[dict[Verb, tuple[str, ...]]] = {
        Verb.GET: ("servicemanagement.services.get",),
        Verb.CREATE: ("servicemanagement.services.create", "servicemanagement.services.get"),
        Verb.DELETE: ("servicemanagement.services.delete", "servicemanagement.services.get"),
    }

    name: ServiceName = Field(alias="serviceName")
    producer_project_id: str | None = None

    @property
    def link(self) -> str:
        return f"services/{self.name}"


class OpenApiResponse(ApiModel):
    description: str


class OpenApiOperation(ApiModel):
    operation_id: str
    summary: str | None = None
    consumes: tuple[str, ...] = ("application/json",)
    produces: tuple[str, ...] = ("application/json",)
    responses: dict[str, OpenApiResponse] = Field(
        default_factory=lambda: {"200": OpenApiResponse(description="ok")}
    )


class EndpointsTarget(ApiModel):
    name: str
    target: str | None = None
    allow_cors: bool | None = None


class OpenApiInfo(ApiModel):
    title: str
    version: str
    description: str | None = None


PathItem = dict[HttpMethod, OpenApiOperation]


class OpenApiDocument(ApiModel):
    """The OpenAPI 2.0 document Endpoints serves (the fields Endpoints reads)."""

    swagger: Literal["2.0"] = "2.0"
    info: OpenApiInfo
    host: ServiceName
    x_google_endpoints: tuple[EndpointsTarget, ...] = Field(default=(), alias="x-google-endpoints")
    schemes: tuple[Literal["http", "https"], ...] = ("http",)
    paths: dict[str, PathItem] = Field(default_factory=dict)

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: dict[str, PathItem]) -> dict[str, PathItem]:
        seen: set[str] = set()
        for path, item in v.items():
            if not path.startswith("/"):
                raise ValueError(f"OpenAPI path '{path}' must start with '/'")
            for op in item.values():
                if op.operation_id in seen:
                    raise ValueError(f"operationId '{op.operation_id}' is used twice")
                seen.add(op.operation_id)
        return v


class EndpointsConfig(ResourceSpec):
    """The service's OpenAPI config: submitted and rolled out whenever its paths change."""

    KIND: ClassVar[str] = "endpointsConfig"
    COLLECTION: ClassVar[str] = "configs"
    API: ClassVar[str] = "servicemanagement"
    API_SCHEMA: ClassVar[str] = "Service"
    FILE_PATH: ClassVar[str] = "openapi.json"
    LIFECYCLE: ClassVar[Lifecycle] = Lifecycle.PASSIVE
    MUTABILITY: ClassVar[Mutability] = Mutability.DYNAMIC
    PERMISSIONS: ClassVar[dict[Verb, tuple[str, ...]]] = {
        Verb.GET: ("servicemanagement.services.get",),
        # The first rollout also enables the service for the project (consumer side).
        Verb.CREATE: (
            "servicemanagement.services.update",
            "servicemanagement.services.get",
            "serviceusage.services.enable",
        ),
        Verb.UPDATE: ("servicemanagement.services.update", "servicemanagement.services.get"),
        # Configs are never deleted on their own; "delete" rolls out an empty path set.
        Verb.DELETE: ("servicemanagement.services.update", "servicemanagement.services.get"),
    }

    name: ServiceName
    openapi: OpenApiDocument

    @model_validator(mode="after")
    def _host(self) -> Self:
        if self.openapi.host != self.name:
            raise ValueError(
                f"OpenAPI host '{self.openapi.host}' must equal the service '{self.name}'"
            )
        return self

    @property
    def link(self) -> str:
        return f"services/{self.name}/configs"

    def references(self) -> tuple[ResourceKey, ...]:
        return (ResourceKey(EndpointsService.KIND, self.name),)

    def to_api(
        self,
        project: str | None = None,
        *,
        fingerprint: str | None = None,
        base: str | None = None,
    ) -> dict[str, Any]:
        """The OpenAPI document itself: that is what a config submission carries."""
        return self.openapi.to_api(project)

    def config_source(self) -> dict[str, Any]:
        """The body of `services.configs.submit`: the OpenAPI document as a JSON source file."""
        text = json.dumps(self.openapi.to_api(), sort_keys=True).encode()
        return {
            "configSource": {
                "files": [
                    {
                        "filePath": self.FILE_PATH,
                        "fileContents": base64.b64encode(text).decode(),
                        "fileType": "OPEN_API_JSON",
                    }
                ]
            }
        }

    @classmethod
    def from_api(cls, body: Mapping[str, Any], project: str) -> Self:
        """Read back from a service config (`configs.get?view=FULL`): the OpenAPI source file
        it was generated from."""
        files = (body.get("sourceInfo") or {}).get("sourceFiles") or ()
        for f in files:
            if isinstance(f, Mapping) and f.get("fileType") in ("OPEN_API_JSON", 2):
                doc = json.loads(base64.b64decode(str(f.get("fileContents", ""))))
                return cls(
                    name=str(body.get("name", "")), openapi=OpenApiDocument.model_validate(doc)
                )
        raise ValueError(f"service config of '{body.get('name')}' holds no OpenAPI JSON source")

    def merge_live(self, live: Self) -> Self:
        """Keep live paths this spec does not declare (revisions add theirs with changes)."""
        extra = {p: item for p, item in live.openapi.paths.items() if p not in self.openapi.paths}
        if not extra:
            return self
        openapi = OpenApiDocument.model_validate(
            {**self.openapi.__dict__, "paths": {**extra, **self.openapi.paths}}
        )
        return self.model_copy(update={"openapi": openapi})


class ApiPathsChange(Change):
    service: ServiceName

    @property
    def target(self) -> ResourceKey:
        return ResourceKey(EndpointsConfig.KIND, self.service)

    def apply(self, spec: ResourceSpec) -> ResourceSpec:
        if not isinstance(spec, EndpointsConfig):
            raise TypeError(f"an API paths change applies to an Endpoints config, not {spec.KIND}")
        paths = self.edit(dict(spec.openapi.paths))
        openapi = OpenApiDocument.model_validate({**spec.openapi.__dict__, "paths": paths})
        return spec.model_copy(update={"openapi": openapi})

    @abstractmethod
    def edit(self, paths: dict[str, PathItem]) -> dict[str, PathItem]:
        """The edited path table (the argument is a copy the change may mutate)."""


class SetApiPaths(ApiPathsChange):
    """Add or replace the given paths in the served OpenAPI document."""

    change: Literal["setApiPaths"] = "setApiPaths"
    paths: dict[str, PathItem]

    def edit(self, paths: dict[str, PathItem]) -> dict[str, PathItem]:
        paths.update(self.paths)
        return paths


class RemoveApiPaths(ApiPathsChange):
    """Remove every path under `prefix` (no-op when none)."""

    change: Literal["removeApiPaths"] = "removeApiPaths"
    prefix: str

    def edit(self, paths: dict[str, PathItem]) -> dict[str, PathItem]:
        return {p: item for p, item in paths.items() if not p.startswith(self.prefix)}


def model_paths(prefix: str, operation_prefix: str) -> Mapping[str, PathItem]:
    """The paths one served model exposes: POST {prefix}predict."""
    op = OpenApiOperation(operation_id=f"{operation_prefix}Predict", summary="Predict")
    return {f"{prefix}predict": {"post": op}}
