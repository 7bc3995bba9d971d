"""The client side of the local provider: `AgentClient` speaks the agent's HTTP API, and
`LocalResourceProvider` implements the provider contract for one kind on top of it.

Every call carries the agent's bearer token and the acting principal (`X-Mlplane-Principal`);
the agent re-checks each call with the IAM model, as GCP would. Errors come back in Google's
shape and are mapped with `error_for_status`, like the gcp provider's.
"""

from __future__ import annotations

import builtins
import http.client
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast
from urllib.parse import quote, urlsplit

from mlplane.errors import ConfigError, PermanentError
from mlplane.model.compute import ResourceKey, ResourceSpec, spec_from_data, spec_to_data
from mlplane.model.principals import Principal
from mlplane.providers.base import (
    Observed,
    Operation,
    ProviderContext,
    ResourceProvider,
    SupportsOperationWait,
)
from mlplane.providers.errors import ProviderUnavailable, error_for_status
from mlplane.providers.registry import ProviderSet

from .paths import AgentPaths, read_info, read_token
from .wire import (
    AgentStatus,
    ApiErrorInfo,
    ReplicaView,
    ResourceView,
    operation_from_json,
)

PRINCIPAL_HEADER = "X-Mlplane-Principal"
SpecT = TypeVar("SpecT", bound=ResourceSpec)


class AgentNotRunning(PermanentError):
    """No local agent answers for this project."""

    exit_code = 4


class AgentAuthError(PermanentError):
    """The agent refused the credentials (a token from another agent, or none)."""


class AgentClient:
    def __init__(
        self, base_url: str, token: str, principal: Principal | str | None = None, *,
        timeout: float = 30.0,
    ) -> None:  # fmt: skip
        parts = urlsplit(base_url)
        self.base_url = base_url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.token = token
        self.principal = str(principal) if principal is not None else None
        self.timeout = timeout

    @classmethod
    def for_paths(cls, paths: AgentPaths, principal: Principal | str | None = None) -> AgentClient:
        info, token = read_info(paths), read_token(paths)
        if info is None or token is None:
            raise AgentNotRunning(
                f"no local agent is running for {paths.project_file}: start it with `mlplane up`"
            )
        return cls(info.base_url, token, principal)

    @classmethod
    def for_project(
        cls, project_file: Path | str, principal: Principal | str | None = None
    ) -> AgentClient:
        return cls.for_paths(AgentPaths.for_project(project_file), principal)

    def acting_as(self, principal: Principal | str) -> AgentClient:
        return AgentClient(self.base_url, self.token, principal, timeout=self.timeout)

    # -- transport -----------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        body: object | None = None,
        *,
        key: ResourceKey | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One request; returns the decoded JSON or raises mlplane's error for the status."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if self.principal:
            headers[PRINCIPAL_HEADER] = self.principal
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except ConnectionRefusedError:
            raise AgentNotRunning(
                f"the local agent at {self.base_url} does not answer: start it with `mlplane up`"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ProviderUnavailable(f"local agent at {self.base_url}: {exc}", key) from exc
        finally:
            conn.close()
        try:
            decoded: Any = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode("utf-8", "replace")
        if resp.status < 300:
            return decoded
        info = ApiErrorInfo.from_body(resp.status, decoded)
        if resp.status == 401:
            raise AgentAuthError(f"the local agent refused the request: {info.message}")
        raise error_for_status(
            resp.status, info.message, reason=info.reason, key=key, used_by=info.used_by
        )

    # -- typed calls ---------------------------------------------------------------------------

    def create(self, spec: ResourceSpec, request_id: str) -> Operation:
        body = {"spec": spec_to_data(spec), "requestId": request_id}
        return operation_from_json(self.call("POST", _kind_path(spec.KIND), body, key=spec.key))

    def update(self, spec: ResourceSpec, fingerprint: str | None, request_id: str) -> Operation:
        body = {"spec": spec_to_data(spec), "fingerprint": fingerprint, "requestId": request_id}
        path = _resource_path(spec.key)
        return operation_from_json(self.call("PUT", path, body, key=spec.key))

    def delete(self, key: ResourceKey, request_id: str) -> Operation:
        path = f"{_resource_path(key)}?requestId={quote(request_id)}"
        return operation_from_json(self.call("DELETE", path, key=key))

    def get(self, key: ResourceKey) -> ResourceView:
        return ResourceView.from_json(self.call("GET", _resource_path(key), key=key))

    def list(self, kind: str) -> builtins.list[ResourceView]:
        items = self.call("GET", _kind_path(kind))["items"]
        return [ResourceView.from_json(i) for i in items]

    def get_operation(self, op: Operation) -> Operation:
        path = f"/v1/operations/{quote(op.name)}"
        return operation_from_json(self.call("GET", path, key=op.target))

    def wait_operation(self, op: Operation, timeout: float) -> Operation:
        wait = max(0.0, min(timeout, 60.0))
        path = f"/v1/operations/{quote(op.name)}?wait={wait:.3f}"
        return operation_from_json(self.call("GET", path, key=op.target, timeout=wait + 30))

    def status(self) -> AgentStatus:
        return AgentStatus.from_json(self.call("GET", "/v1/status"))

    def managed_instances(self, name: str) -> builtins.list[ReplicaView]:
        key = ResourceKey("instanceGroupManager", name)
        items = self.call("GET", f"{_resource_path(key)}/managedInstances", key=key)["items"]
        return [ReplicaView.from_json(i) for i in items]


def _kind_path(kind: str) -> str:
    return f"/v1/resources/{quote(kind)}"


def _resource_path(key: ResourceKey) -> str:
    return f"/v1/resources/{quote(key.kind)}/{quote(key.name)}"


class LocalResourceProvider(ResourceProvider[SpecT], SupportsOperationWait, Generic[SpecT]):
    """The provider contract for one kind, as calls to the project's local agent.

    Built by the registry from a `ProviderContext` (its `workdir` is the project's directory; a
    `principal` attribute, when the context has one, is the acting principal), or directly with
    a client. Mutations need an acting principal: use `acting_as`.
    """

    KIND: ClassVar[str]
    SPEC: ClassVar[type[ResourceSpec]]

    def __init__(
        self,
        ctx: ProviderContext | None = None,
        *,
        client: AgentClient | None = None,
        principal: Principal | str | None = None,
    ) -> None:
        self.ctx = ctx
        self._client = client
        self.principal = principal or getattr(ctx, "principal", None)

    def acting_as(self, principal: Principal | str) -> LocalResourceProvider[SpecT]:
        return type(self)(self.ctx, client=self._client, principal=principal)

    @property
    def client(self) -> AgentClient:
        if self._client is None:
            workdir = self.ctx.workdir if self.ctx and self.ctx.workdir else Path.cwd()
            self._client = AgentClient.for_paths(AgentPaths.for_workdir(workdir))
        if self.principal is None:
            raise ConfigError(
                f"local provider ({self.KIND})",
                "principal",
                "no acting principal: build the provider with principal=... or acting_as(...)",
            )
        return self._client.acting_as(self.principal)

    def _observed(self, view: ResourceView) -> Observed[SpecT]:
        spec = cast(SpecT, spec_from_data(self.KIND, view.spec))
        return Observed(spec, view.fingerprint, view.state, view.self_link)

    def create(self, spec: SpecT, *, request_id: str) -> Operation:
        return self.client.create(spec, request_id)

    def get(self, key: ResourceKey) -> Observed[SpecT]:
        return self._observed(self.client.get(key))

    def update(self, spec: SpecT, *, fingerprint: str | None, request_id: str) -> Operation:
        return self.client.update(spec, fingerprint, request_id)

    def delete(self, key: ResourceKey, *, request_id: str) -> Operation:
        return self.client.delete(key, request_id)

    def list(self) -> Sequence[Observed[SpecT]]:
        return [self._observed(v) for v in self.client.list(self.KIND)]

    def get_operation(self, op: Operation) -> Operation:
        return self.client.get_operation(op)

    def wait_operation(self, op: Operation, timeout: float) -> Operation:
        return self.client.wait_operation(op, timeout)


def local_providers(
    project_file: Path | str,
    principal: Principal | str,
    *,
    project: str = "",
    kinds: Sequence[str] | None = None,
) -> ProviderSet:
    """The local provider's implementations (all kinds, or `kinds`), acting as `principal`:
    what the engine is given to apply desired state on this machine."""
    from mlplane.providers.registry import REGISTRY

    workdir = Path(project_file).resolve().parent
    built = REGISTRY.build("local", ProviderContext(project=project, workdir=workdir), kinds)
    acting: dict[str, ResourceProvider[Any]] = {}
    for kind, provider in built.by_kind.items():
        assert isinstance(provider, LocalResourceProvider)
        acting[kind] = provider.acting_as(principal)
    return ProviderSet("local", acting)


def frontend_url(client: AgentClient, forwarding_rule: str | None = None) -> str:
    """`http://127.0.0.1:PORT` of a forwarding rule's listener (the only one, or by name)."""
    resources = client.status().resources
    rules = [v for v in resources if v.kind == "forwardingRule" and v.state == "READY"]
    if forwarding_rule is not None:
        rules = [v for v in rules if v.name == forwarding_rule]
    if len(rules) != 1:
        names = ", ".join(v.name for v in rules) or "none"
        raise ConfigError("local agent", "forwardingRule", f"need exactly one (found: {names})")
    port = rules[0].spec.get("portRange", "80").partition("-")[0]
    return f"http://127.0.0.1:{port}"


def service_url(client: AgentClient, service: str, forwarding_rule: str | None = None) -> str:
    """Where a served model answers locally: the load balancer + `/v1/models/SERVICE/`."""
    from mlplane.model.compute import model_prefix

    return frontend_url(client, forwarding_rule) + model_prefix(service)
