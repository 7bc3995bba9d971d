"""Cloud Endpoints as providers: the managed service (Service Management `services`) and its
OpenAPI config (`configs:submit`, then a rollout of that config at 100 %, and on first use
Service Usage `services.enable` for the project).

Google answers `services.get` of a service that does not exist with 403 "not found or
permission denied"; `get` reads that as NotFound, and a create that follows says plainly if the
caller really lacks the permission.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from mlplane.errors import PermissionDenied
from mlplane.model.compute import EndpointsConfig, EndpointsService, ResourceKey, Verb
from mlplane.providers.base import (
    Observed,
    Operation,
    ProviderContext,
    ResourceProvider,
    SupportsOperationWait,
)
from mlplane.providers.errors import NotFound, OperationFailed, OperationTimeout

from .client import GoogleApis
from .operations import OperationPoller, long_running, response_of
from .session import apis_for

API = "servicemanagement"
LRO_TIMEOUT = 600.0


class _Endpoints(SupportsOperationWait):
    def __init__(self, ctx: ProviderContext, apis: GoogleApis | None = None) -> None:
        self.ctx = ctx
        self.apis = apis or apis_for(ctx)
        self.poller = OperationPoller(self.apis, ctx.project)

    def get_operation(self, op: Operation) -> Operation:
        return self.poller.get(op)

    def wait_operation(self, op: Operation, timeout: float) -> Operation:
        return self.poller.wait(op, timeout)

    def _lro(
        self, data: Mapping[str, Any], key: ResourceKey, verb: Verb, api: str = API
    ) -> Operation:
        return long_running(data, api, key, verb)

    def _result(self, data: Mapping[str, Any], key: ResourceKey, api: str = API) -> dict[str, Any]:
        """Wait for a long-running operation; its response, or its error raised."""
        deadline, delay = time.monotonic() + LRO_TIMEOUT, 0.01
        while not data.get("done"):
            if time.monotonic() > deadline:
                raise OperationTimeout(f"{key}: {data.get('name')} not done", key)
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
            data = self.apis.call(f"{api}.operations.get", {"name": data["name"]}, key=key)
        op = long_running(data, api, key, Verb.UPDATE)
        if op.error is not None:
            raise OperationFailed(f"{key}: {op.error.message}", key, op.error.code)
        return response_of(data)


class EndpointsServices(_Endpoints, ResourceProvider[EndpointsService]):
    KIND = EndpointsService.KIND

    def create(self, spec: EndpointsService, *, request_id: str) -> Operation:
        body = spec.to_api(self.ctx.project)
        body.setdefault("producerProjectId", self.ctx.project)
        data = self.apis.call(f"{API}.services.create", {}, body, key=spec.key)
        return self._lro(data, spec.key, Verb.CREATE)

    def get(self, key: ResourceKey) -> Observed[EndpointsService]:
        try:
            data = self.apis.call(f"{API}.services.get", {"serviceName": key.name}, key=key)
        except PermissionDenied as exc:
            if "not found or permission denied" in str(exc):
                raise NotFound(f"{key}: {exc}", key) from None
            raise
        return Observed(EndpointsService.from_api(data, self.ctx.project))

    def update(
        self, spec: EndpointsService, *, fingerprint: str | None, request_id: str
    ) -> Operation:
        raise OperationFailed(f"{spec.key} is static: a managed service is never updated", spec.key)

    def delete(self, key: ResourceKey, *, request_id: str) -> Operation:
        data = self.apis.call(f"{API}.services.delete", {"serviceName": key.name}, key=key)
        return self._lro(data, key, Verb.DELETE)

    def list(self) -> Sequence[Observed[EndpointsService]]:
        data = self.apis.call(f"{API}.services.list", {"producerProjectId": self.ctx.project})
        return [
            Observed(EndpointsService.from_api(item, self.ctx.project))
            for item in (data or {}).get("services", ())
        ]


class EndpointsConfigs(_Endpoints, ResourceProvider[EndpointsConfig]):
    """Submit the OpenAPI document as a config, roll it out; the first time, enable it."""

    KIND = EndpointsConfig.KIND

    def _submit_and_roll_out(self, spec: EndpointsConfig, verb: Verb) -> Operation:
        params = {"serviceName": spec.name}
        submitted = self.apis.call(
            f"{API}.services.configs.submit", params, spec.config_source(), key=spec.key
        )
        config_id = str(self._result(submitted, spec.key).get("serviceConfig", {}).get("id", ""))
        rollout = {
            "serviceName": spec.name,
            "trafficPercentStrategy": {"percentages": {config_id: 100.0}},
        }
        data = self.apis.call(f"{API}.services.rollouts.create", params, rollout, key=spec.key)
        return self._lro(data, spec.key, verb)

    def create(self, spec: EndpointsConfig, *, request_id: str) -> Operation:
        self._result(self._raw(self._submit_and_roll_out(spec, Verb.CREATE)), spec.key)
        name = f"projects/{self.ctx.project}/services/{spec.name}"
        data = self.apis.call("serviceusage.services.enable", {"name": name}, {}, key=spec.key)
        return self._lro(data, spec.key, Verb.CREATE, "serviceusage")

    def _raw(self, op: Operation) -> dict[str, Any]:
        api = op.scope.removeprefix("lro:")
        raw: dict[str, Any] = self.apis.call(
            f"{api}.operations.get", {"name": op.name}, key=op.target
        )
        return raw

    def get(self, key: ResourceKey) -> Observed[EndpointsConfig]:
        params = {"serviceName": key.name, "view": "FULL"}
        try:
            data = self.apis.call(f"{API}.services.getConfig", params, key=key)
        except PermissionDenied as exc:
            if "not found or permission denied" in str(exc):
                raise NotFound(f"{key}: {exc}", key) from None
            raise
        return Observed(EndpointsConfig.from_api(data, self.ctx.project))

    def update(
        self, spec: EndpointsConfig, *, fingerprint: str | None, request_id: str
    ) -> Operation:
        return self._submit_and_roll_out(spec, Verb.UPDATE)

    def delete(self, key: ResourceKey, *, request_id: str) -> Operation:
        """Configs are never deleted: roll out the live document without paths."""
        live = self.get(key).spec
        empty = live.openapi.model_copy(update={"paths": {}})
        return self._submit_and_roll_out(live.model_copy(update={"openapi": empty}), Verb.DELETE)

    def list(self) -> Sequence[Observed[EndpointsConfig]]:
        out = []
        for service in EndpointsServices(self.ctx, self.apis).list():
            try:
                out.append(self.get(ResourceKey(EndpointsConfig.KIND, service.spec.name)))
            except NotFound:
                continue
        return out
