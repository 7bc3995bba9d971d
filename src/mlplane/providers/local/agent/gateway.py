"""The agent's one front door, as LocalStack's gateway is for AWS: a request chain that finds
the Google API and method a request is for (from the shipped discovery documents), checks the
bearer token before the body is read, validates the body against the method's schema, calls the
surface's handler as the token's principal, and renders any error in Google's JSON shape.

Mounts (what `mlplane env gcloud` points the real gcloud CLI at):
    /compute/v1/...               Compute Engine v1
    /servicemanagement/v1/...     Service Management v1 (Cloud Endpoints)
    /serviceusage/v1/...          Service Usage v1
    /cloudbuild/v1/...            Cloud Build v1
    /iamcredentials/v1/...        IAM Credentials v1
    /run/v2/..., /run/v1/..., /run/apis/serving.knative.dev/v1/...   Cloud Run Admin v2 and v1
    /v2/token                     the local registry's token endpoint (Docker's token flow)
    /oauth2/token, /oauth2/tokeninfo   the token authority (sign-in exchange, token info)
    /_mlplane/...                 the emulator's own host: liveness, merged OpenAPI document
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from mlplane.apis.discovery import Api, Method
from mlplane.apis.errors import ApiError, bad_request, unauthenticated
from mlplane.apis.schema import validate
from mlplane.errors import ConfigError, MlplaneError, PermissionDenied
from mlplane.providers.errors import (
    AlreadyExists,
    FingerprintConflict,
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
    ResourceInUse,
)

from .auth import Caller, Gate, Unauthenticated, bearer
from .http_server import BadRequest, Request, Response

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """One API call, authenticated and validated, as a handler receives it."""

    caller: Caller
    method: Method
    params: Mapping[str, str]  # path parameters, then query parameters
    body: Any  # the validated JSON body (None when the method takes none)
    request: Request

    def param(self, name: str, default: str = "") -> str:
        return self.params.get(name, default)


Handler = Callable[[Call], Awaitable[object]]


@dataclass(frozen=True)
class Surface:
    """One Google API as the agent serves it: where it is mounted and its method handlers."""

    api: Api
    mount: str  # e.g. /compute/v1/ or /servicemanagement/
    handlers: Mapping[str, Handler]


# A plain route outside the discovery-described APIs (token endpoint, admin paths).
PlainHandler = Callable[[Request], Awaitable[Response]]


_MLPLANE_ERRORS: tuple[tuple[type[MlplaneError], int, str], ...] = (
    (PermissionDenied, 403, "forbidden"),
    (NotFound, 404, "notFound"),
    (AlreadyExists, 409, "alreadyExists"),
    (FingerprintConflict, 412, "conditionNotMet"),
    (ResourceInUse, 400, "resourceInUseByAnotherResource"),
    (ProviderUnavailable, 503, "resourceNotReady"),
    (InvalidRequest, 400, "invalid"),
    (ConfigError, 400, "invalid"),
)


def api_error(exc: BaseException) -> ApiError:
    """Google's error for an exception raised while serving a call."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, Unauthenticated):
        return unauthenticated(str(exc))
    if isinstance(exc, BadRequest):
        return bad_request(str(exc), "badRequest")
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "resource"
        return bad_request(f"Invalid value for field '{where}': {first.get('msg')}")
    if isinstance(exc, MlplaneError):
        for cls, status, reason in _MLPLANE_ERRORS:
            if isinstance(exc, cls):
                return ApiError(status, str(exc), reason)
        return bad_request(str(exc))
    raise exc


def error_response(err: ApiError) -> Response:
    headers: tuple[tuple[str, str], ...] = ()
    if err.code == 401:
        headers = (("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"'),)
    return Response.json(err.code, err.to_json(), headers=headers)


PUBLIC = ("/_mlplane/", "/oauth2/", "/openapi.json")  # paths that authenticate by themselves


class Gateway:
    def __init__(
        self,
        gate: Gate,
        surfaces: list[Surface],
        plain: Mapping[tuple[str, str], PlainHandler],
        public_prefixes: tuple[str, ...] = PUBLIC,
    ) -> None:
        self.gate = gate
        self.surfaces = sorted(surfaces, key=lambda s: -len(s.mount))
        self.plain = plain
        self.public = public_prefixes

    def admit(self, req: Request) -> Response | None:
        """Before any body byte is read: an API call needs a token the authority issued."""
        if req.path.startswith(self.public):
            return None
        try:
            if self.gate.tokens.lookup(bearer(req.headers)) is None:
                raise Unauthenticated(
                    "Request had invalid authentication credentials: the access token is "
                    "unknown or expired"
                )
        except Unauthenticated as exc:
            return error_response(unauthenticated(str(exc)))
        return None

    async def handle(self, req: Request) -> Response:
        try:
            plain = self.plain.get((req.method, req.path))
            if plain is not None:
                return await plain(req)
            return await self._api(req)
        except Exception as exc:
            try:
                return error_response(api_error(exc))
            except Exception:
                log.exception("error serving %s %s", req.method, req.path)
                return error_response(ApiError(500, "internal error in the local agent"))

    def _find(self, req: Request) -> tuple[Surface, Method, dict[str, str]]:
        raw = req.raw_path or req.path
        allowed: list[str] = []
        mount = None
        for surface in self.surfaces:  # longest mount first; one mount may serve two versions
            if not raw.startswith(surface.mount) or (mount and surface.mount != mount):
                continue
            mount = surface.mount
            relative = raw[len(surface.mount) :]
            found = surface.api.route(req.method, relative)
            if found is None:
                allowed += surface.api.allows(relative)
                continue
            method, params = found
            from urllib.parse import unquote

            return surface, method, {k: unquote(v) for k, v in params.items()}
        if allowed:
            raise ApiError(405, f"{req.method} not allowed; use {', '.join(sorted(allowed))}")
        raise ApiError(
            404, f"The requested URL {req.path} was not found on this server.", "notFound"
        )

    async def _api(self, req: Request) -> Response:
        surface, method, path_params = self._find(req)
        caller = self.gate.caller(req.headers)
        # Query parameters the shipped discovery revision does not list are ignored: gcloud's
        # own API revision may be newer (e.g. aggregatedList's returnPartialSuccess).
        params = dict(req.query) | path_params
        body = None
        if method.request is not None:
            body = req.json() if req.body else {}
            violations = validate(surface.api, method.request, body, method_id=method.id)
            if violations:
                first = violations[0]
                raise ApiError(
                    400,
                    first.description,
                    "required" if first.reason == "required" else "invalid",
                    field_violations=tuple((v.field, v.description) for v in violations),
                )
        handler = surface.handlers.get(method.id)
        if handler is None:
            raise ApiError(
                501, f"{method.id} is not implemented by the local agent", "notImplemented"
            )
        result = await handler(Call(caller, method, params, body, req))
        if isinstance(result, Response):
            return result
        return Response.json(200, result)
