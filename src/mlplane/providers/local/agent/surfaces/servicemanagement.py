"""Service Management v1 (Cloud Endpoints) and Service Usage v1, as the agent serves them.

A managed service is mlplane's EndpointsService; `configs:submit` stores an OpenAPI source as a
new config (ids `YYYY-MM-DDrN`, as Google names them); a rollout makes a config the active one,
which is mlplane's EndpointsConfig: what the agent serves as the merged OpenAPI document.
Mutations answer with google.longrunning operations, done when the work is. Configs, rollouts
and enabled services outlive the agent (`endpoints_state.py`).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlplane.apis.discovery import load
from mlplane.apis.errors import ApiError, bad_request, not_found
from mlplane.model.compute import (
    EndpointsConfig,
    EndpointsService,
    OpenApiDocument,
    ResourceKey,
    Verb,
)
from mlplane.providers.base import OperationStatus

from ..gateway import Call, Handler, Surface
from ..operations import LongRunning, LongRunningOperations, OperationRecord
from ..service import ResourceService
from .compute_views import rfc3339
from .endpoints_state import EndpointsState, RolloutRecord, ServiceConfig

log = logging.getLogger(__name__)
SM_API = load("servicemanagement")
SU_API = load("serviceusage")
_SM_TYPES = "type.googleapis.com/google.api.servicemanagement.v1"
_CONFIG_FILE_TYPE = f"{_SM_TYPES}.ConfigFile"
# Google APIs the local agent serves (always enabled), besides the Endpoints services.
PLATFORM_SERVICES = (
    "compute.googleapis.com",
    "servicemanagement.googleapis.com",
    "serviceusage.googleapis.com",
    "cloudbuild.googleapis.com",
    "iamcredentials.googleapis.com",
    "endpoints.googleapis.com",
    "servicecontrol.googleapis.com",
)


class ServiceManagementApi:
    def __init__(
        self,
        service: ResourceService,
        project_number: Callable[[], int],
        state_dir: Path | None = None,
    ) -> None:
        self.service = service
        self.project_number = project_number
        self.lro = LongRunningOperations()
        self.state = EndpointsState(state_dir, PLATFORM_SERVICES)
        self.configs = self.state.configs
        self.rollouts = self.state.rollouts
        self.enabled = self.state.enabled
        self._pending: dict[str, tuple[OperationRecord, Callable[[], dict[str, Any]]]] = {}

    @property
    def project(self) -> str:
        return self.service.gate.project

    def restore(self) -> None:
        """Read back what a previous agent held (ConfigError naming a damaged file). A rollout
        it had not seen finish succeeded if the active config (the EndpointsConfig record, itself
        restored) is that rollout's config, else failed."""
        self.state.load(_read_config)
        for name, rollouts in self.rollouts.items():
            rec = self.service.store.get(ResourceKey(EndpointsConfig.KIND, name))
            changed = False
            for r in rollouts:
                if r.status == "IN_PROGRESS":
                    cfg = next((c for c in self.configs.get(name, ()) if c.id == r.config_id), None)
                    ok = rec is not None and cfg is not None and cfg.spec == rec.spec
                    r.status, changed = ("SUCCESS" if ok else "FAILED"), True
            if changed:
                self.state.rollouts_changed(name)

    def surfaces(self) -> list[Surface]:
        sm: dict[str, Handler] = {
            "servicemanagement.services.create": self._create,
            "servicemanagement.services.get": self._get,
            "servicemanagement.services.list": self._list,
            "servicemanagement.services.delete": self._delete,
            "servicemanagement.services.getConfig": self._get_config,
            "servicemanagement.services.configs.submit": self._submit,
            "servicemanagement.services.configs.get": self._config_get,
            "servicemanagement.services.configs.list": self._config_list,
            "servicemanagement.services.rollouts.create": self._rollout,
            "servicemanagement.services.rollouts.get": self._rollout_get,
            "servicemanagement.services.rollouts.list": self._rollout_list,
            "servicemanagement.operations.get": self._operation,
        }
        su: dict[str, Handler] = {
            "serviceusage.services.enable": self._enable,
            "serviceusage.services.disable": self._disable,
            "serviceusage.services.get": self._usage_get,
            "serviceusage.services.list": self._usage_list,
            "serviceusage.operations.get": self._operation,
        }
        return [Surface(SM_API, "/servicemanagement/", sm), Surface(SU_API, "/serviceusage/", su)]

    # -- operations ----------------------------------------------------------------------------

    def _track(self, op: OperationRecord, response: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        meta = {"@type": f"{_SM_TYPES}.OperationMetadata", "startTime": rfc3339(time.time())}
        lro = self.lro.start(metadata=meta)
        self._pending[lro.name] = (op, response)
        return self._settle(lro).to_json()

    def _settle(self, lro: LongRunning) -> LongRunning:
        pending = self._pending.get(lro.name)
        if pending is not None and pending[0].status is OperationStatus.DONE:
            op, response = self._pending.pop(lro.name)
            if op.error is not None:
                lro.finish(
                    error=ApiError(op.error.http_status or 400, op.error.message, op.error.code)
                )
            else:
                lro.finish(response())
        return lro

    async def _operation(self, call: Call) -> object:
        name = call.param("name") or f"operations/{call.param('operationsId')}"
        lro = self.lro.get(name)
        pending = self._pending.get(lro.name)
        if pending is not None:
            await self.service.ops.wait(pending[0].name, 0.0)
        return self._settle(lro).to_json()

    # -- services ------------------------------------------------------------------------------

    def _record(self, name: str) -> Any:
        rec = self.service.store.get(ResourceKey(EndpointsService.KIND, name))
        if rec is None:
            # Google answers a missing service this way, not with 404.
            raise ApiError(403, f"Service '{name}' not found or permission denied.", "forbidden")
        return rec

    def _managed(self, spec: EndpointsService) -> dict[str, Any]:
        return {
            "serviceName": spec.name,
            "producerProjectId": spec.producer_project_id or self.project,
        }

    async def _create(self, call: Call) -> object:
        try:
            spec = EndpointsService.from_api(call.body, self.project)
        except ValueError as exc:
            raise bad_request(str(exc).splitlines()[0]) from None
        op = self.service.create(call.caller, spec, "", op_type="create")
        return self._track(
            op, lambda: {"@type": f"{_SM_TYPES}.ManagedService", **self._managed(spec)}
        )

    async def _get(self, call: Call) -> object:
        name = call.param("serviceName")
        self.service.gate.authorize(call.caller, Verb.GET, ResourceKey(EndpointsService.KIND, name))
        return self._managed(self._record(name).spec)

    async def _list(self, call: Call) -> object:
        self.service.gate.require_project(call.caller, "servicemanagement.services.list")
        producer = call.param("producerProjectId")
        specs = [r.spec for r in self.service.store.of_kind(EndpointsService.KIND)]
        items = [
            self._managed(s)
            for s in specs
            if isinstance(s, EndpointsService)
            and (not producer or (s.producer_project_id or self.project) == producer)
        ]
        return {"services": items}

    async def _delete(self, call: Call) -> object:
        name = call.param("serviceName")
        self._record(name)
        op = self.service.delete(call.caller, ResourceKey(EndpointsService.KIND, name), "")
        return self._track(op, lambda: {})

    # -- configs -------------------------------------------------------------------------------

    def _next_config_id(self, name: str) -> str:
        day = time.strftime("%Y-%m-%d", time.gmtime())
        n = sum(1 for c in self.configs.get(name, ()) if c.id.startswith(day))
        return f"{day}r{n}"

    def _config_json(self, name: str, cfg: ServiceConfig, full: bool) -> dict[str, Any]:
        doc = cfg.spec.openapi
        out: dict[str, Any] = {
            "name": name,
            "id": cfg.id,
            "title": doc.info.title,
            "producerProjectId": self.project,
            "apis": [{"name": f"{name}", "version": doc.info.version}],
            "http": {
                "rules": [
                    {"selector": op.operation_id, method: path}
                    for path, item in sorted(doc.paths.items())
                    for method, op in item.items()
                ]
            },
            "configVersion": 3,
        }
        if full:
            out["sourceInfo"] = {
                "sourceFiles": [{"@type": _CONFIG_FILE_TYPE, **f} for f in cfg.files]
            }
        return out

    def _config(self, name: str, config_id: str) -> ServiceConfig:
        for cfg in self.configs.get(name, ()):
            if cfg.id == config_id:
                return cfg
        raise not_found(f"services/{name}/configs/{config_id}")

    def _active(self, name: str) -> ServiceConfig:
        for rollout in reversed(self.rollouts.get(name, ())):
            if rollout.status == "SUCCESS":
                return self._config(name, rollout.config_id)
        raise not_found(f"services/{name}/config (no rollout yet)")

    async def _submit(self, call: Call) -> object:
        name = call.param("serviceName")
        self._record(name)
        self.service.gate.require(
            call.caller, ("servicemanagement.services.update",), self._ref(name)
        )
        files = (call.body.get("configSource") or {}).get("files") or []
        doc = _openapi_of(files)
        try:
            spec = EndpointsConfig(name=name, openapi=OpenApiDocument.model_validate(doc))
        except ValueError as exc:
            raise bad_request(
                f"Cannot convert to service config: {str(exc).splitlines()[0]}"
            ) from None
        cfg = ServiceConfig(self._next_config_id(name), spec, [
            {k: f[k] for k in ("filePath", "fileContents", "fileType") if k in f} for f in files
        ])  # fmt: skip
        if not call.body.get("validateOnly"):
            self.state.add_config(name, cfg)
        response = {
            "@type": f"{_SM_TYPES}.SubmitConfigSourceResponse",
            "serviceConfig": self._config_json(name, cfg, False),
        }
        return self.lro.done(response).to_json()

    async def _config_get(self, call: Call) -> object:
        name = call.param("serviceName")
        self.service.gate.authorize(call.caller, Verb.GET, ResourceKey(EndpointsService.KIND, name))
        cfg = self._config(name, call.param("configId"))
        return self._config_json(name, cfg, call.param("view") == "FULL")

    async def _get_config(self, call: Call) -> object:
        name = call.param("serviceName")
        self.service.gate.authorize(call.caller, Verb.GET, ResourceKey(EndpointsService.KIND, name))
        cfg = (
            self._config(name, call.param("configId"))
            if call.param("configId")
            else self._active(name)
        )
        return self._config_json(name, cfg, call.param("view") == "FULL")

    async def _config_list(self, call: Call) -> object:
        name = call.param("serviceName")
        self.service.gate.authorize(call.caller, Verb.GET, ResourceKey(EndpointsService.KIND, name))
        cfgs = list(reversed(self.configs.get(name, ())))
        return {"serviceConfigs": [self._config_json(name, c, False) for c in cfgs]}

    # -- rollouts ------------------------------------------------------------------------------

    def _ref(self, name: str) -> Any:
        return self.service.gate.ref(ResourceKey(EndpointsService.KIND, name))

    def _rollout_json(self, name: str, r: RolloutRecord) -> dict[str, Any]:
        return {
            "rolloutId": r.id,
            "serviceName": name,
            "status": r.status,
            "createdBy": r.created_by,
            "createTime": rfc3339(r.created_at),
            "trafficPercentStrategy": {"percentages": {r.config_id: 100.0}},
        }

    async def _rollout(self, call: Call) -> object:
        name = call.param("serviceName")
        self._record(name)
        percentages = ((call.body.get("trafficPercentStrategy") or {}).get("percentages")) or {}
        if len(percentages) != 1 or abs(float(next(iter(percentages.values()))) - 100.0) > 1e-9:
            raise bad_request("the local agent rolls out one config at 100 percent")
        config_id = next(iter(percentages))
        cfg = self._config(name, config_id)
        perms = ("servicemanagement.services.update", "servicemanagement.services.get")
        key = ResourceKey(EndpointsConfig.KIND, name)
        if self.service.store.get(key) is None:
            op = self.service.create(
                call.caller, cfg.spec, "", op_type="rollout", permissions=perms
            )
        else:
            op = self.service.update(call.caller, cfg.spec, None, "", op_type="rollout",
                                     check_fingerprint=False, permissions=perms)  # fmt: skip
        rollout = RolloutRecord(f"{config_id}-{len(self.rollouts.get(name, ()))}", config_id,
                                call.caller.principal.email)  # fmt: skip
        self.state.add_rollout(name, rollout)

        def done() -> dict[str, Any]:
            rollout.status = "SUCCESS"
            self._rolled_out(name)
            return {"@type": "type.googleapis.com/google.api.servicemanagement.v1.Rollout",
                    **self._rollout_json(name, rollout)}  # fmt: skip

        result = self._track(op, done)
        if op.error is not None:
            rollout.status = "FAILED"
            self._rolled_out(name)
        return result

    def _rolled_out(self, name: str) -> None:
        try:
            self.state.rollouts_changed(name)
        except OSError as exc:  # the rollout itself is done: never fail it for its record
            log.warning("cannot record the rollouts of %s: %s", name, exc)

    async def _rollout_get(self, call: Call) -> object:
        name = call.param("serviceName")
        self.service.gate.authorize(call.caller, Verb.GET, ResourceKey(EndpointsService.KIND, name))
        for r in self.rollouts.get(name, ()):
            if r.id == call.param("rolloutId"):
                return self._rollout_json(name, r)
        raise not_found(f"services/{name}/rollouts/{call.param('rolloutId')}")

    async def _rollout_list(self, call: Call) -> object:
        name = call.param("serviceName")
        self.service.gate.authorize(call.caller, Verb.GET, ResourceKey(EndpointsService.KIND, name))
        items = [self._rollout_json(name, r) for r in reversed(self.rollouts.get(name, ()))]
        return {"rollouts": items}

    # -- service usage -------------------------------------------------------------------------

    def _usage_name(self, call: Call) -> tuple[str, str]:
        name = call.param("name") or "/".join(
            (call.param("v1Id"), call.param("v1Id1"), "services", call.param("servicesId"))
        )
        parts = name.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[2] != "services":
            raise bad_request(f"'{name}' is not projects/PROJECT/services/SERVICE")
        if parts[1] not in (self.project, str(self.project_number())):
            raise ApiError(403, f"Permission denied on resource project {parts[1]}.", "forbidden")
        return parts[1], parts[3]

    def _usage_json(self, service: str) -> dict[str, Any]:
        state = "ENABLED" if service in self.enabled else "DISABLED"
        return {
            "name": f"projects/{self.project_number()}/services/{service}",
            "parent": f"projects/{self.project_number()}",
            "state": state,
            "config": {"name": service},
        }

    def _known(self, service: str) -> bool:
        endpoints = self.service.store.get(ResourceKey(EndpointsService.KIND, service))
        return service in PLATFORM_SERVICES or endpoints is not None

    async def _enable(self, call: Call) -> object:
        _, service = self._usage_name(call)
        self.service.gate.require_project(call.caller, "serviceusage.services.enable")
        if not self._known(service):
            raise ApiError(
                403, f"Not found or permission denied for service(s): {service}.", "forbidden"
            )
        self.state.enable(service)
        response = {"@type": "type.googleapis.com/google.api.serviceusage.v1.EnableServiceResponse",
                    "service": self._usage_json(service)}  # fmt: skip
        return self.lro.done(response).to_json()

    async def _disable(self, call: Call) -> object:
        _, service = self._usage_name(call)
        self.service.gate.require_project(call.caller, "serviceusage.services.disable")
        self.state.disable(service)
        return self.lro.done({"service": self._usage_json(service)}).to_json()

    async def _usage_get(self, call: Call) -> object:
        _, service = self._usage_name(call)
        self.service.gate.require_project(call.caller, "serviceusage.services.get")
        return self._usage_json(service)

    async def _usage_list(self, call: Call) -> object:
        self.service.gate.require_project(call.caller, "serviceusage.services.list")
        names = sorted(self.enabled)
        return {"services": [self._usage_json(s) for s in names]}


def _read_config(name: str, files: list[dict[str, Any]]) -> EndpointsConfig:
    """A stored config's spec, from its submitted files (ValueError if they hold none)."""
    try:
        doc = _openapi_of(files)
    except ApiError as exc:
        raise ValueError(exc.message) from None
    return EndpointsConfig(name=name, openapi=OpenApiDocument.model_validate(doc))


def _openapi_of(files: list[dict[str, Any]]) -> Any:
    for f in files:
        kind = f.get("fileType")
        try:
            text = base64.b64decode(str(f.get("fileContents", "")), validate=False)
        except ValueError:
            raise bad_request(f"fileContents of {f.get('filePath')} is not base64") from None
        if kind in ("OPEN_API_JSON", 2):
            try:
                return json.loads(text)
            except ValueError as exc:
                raise bad_request(f"{f.get('filePath')}: not JSON: {exc}") from None
        if kind in ("OPEN_API_YAML", 3):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError:
                raise bad_request(
                    "the local agent reads OpenAPI YAML only when PyYAML is installed; "
                    "submit OPEN_API_JSON"
                ) from None
            return yaml.safe_load(text)
    raise bad_request("configSource holds no OpenAPI file (OPEN_API_JSON or OPEN_API_YAML)")
