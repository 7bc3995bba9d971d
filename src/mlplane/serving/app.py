"""What the model server answers, independent of the transport: routes and their bodies.

Every route answers both at its bare path (`/predict`) and under the base path
(`/v1/models/sentiment/predict`): the load balancer forwards paths unchanged, while health
checks and local callers use the bare ones. Errors are JSON in Google's shape:
`{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": ..., "field": ...}}`.
"""

from __future__ import annotations

import json
import logging
from enum import Enum
from pathlib import Path
from typing import Any

from mlplane.errors import ConfigError
from mlplane.serving.artifact import Artifact, load_artifact
from mlplane.serving.openapi import (
    DEFAULT_ENDPOINTS_SERVICE,
    HEALTH,
    OPENAPI,
    PREDICT,
    check_endpoints_service,
    check_service,
    default_base_path,
    normalize_base_path,
    openapi_document,
)
from mlplane.serving.predictor import InstanceError, Predictor, is_inline, load_predictor

log = logging.getLogger("mlplane.serving")

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "DEADLINE_EXCEEDED",
    411: "LENGTH_REQUIRED",
    413: "PAYLOAD_TOO_LARGE",
    417: "EXPECTATION_FAILED",
    431: "HEADERS_TOO_LARGE",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    505: "HTTP_VERSION_NOT_SUPPORTED",
}


class Route(Enum):
    PREDICT = "predict"
    HEALTH = "health"
    OPENAPI = "openapi"


ROUTE_METHOD = {Route.PREDICT: b"POST", Route.HEALTH: b"GET", Route.OPENAPI: b"GET"}


def error_body(code: int, message: str, field: str | None = None) -> bytes:
    err: dict[str, Any] = {"code": code, "status": STATUS_NAMES.get(code, "UNKNOWN")}
    err["message"] = message
    if field is not None:
        err["field"] = field
    return json.dumps({"error": err}).encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


class ModelApp:
    """The routes of one loaded model, with the static bodies rendered once."""

    def __init__(
        self,
        artifact: Artifact,
        predictor: Predictor,
        *,
        service: str,
        base_path: str,
        endpoints_service: str = DEFAULT_ENDPOINTS_SERVICE,
        aliases: tuple[str, ...] = (),
    ) -> None:
        self.artifact = artifact
        self.predictor = predictor
        self.service = service
        self.base_path = base_path
        self.inline = is_inline(predictor)
        self.routes: dict[bytes, Route] = {}
        for suffix, route in (
            (PREDICT, Route.PREDICT),
            (HEALTH, Route.HEALTH),
            (OPENAPI, Route.OPENAPI),
        ):
            self.routes[suffix.encode()] = route
            for prefix in (base_path, *aliases):
                self.routes[(prefix + suffix).encode()] = route
        model = {"name": artifact.name, "version": artifact.version}
        self.model_json = json.dumps(model)
        health = {"status": "SERVING", "model": {**model, "format": artifact.format}}
        self.health_body = json.dumps(health).encode()
        self.openapi = openapi_document(
            service=service,
            base_path=base_path,
            version=artifact.version,
            endpoints_service=endpoints_service,
            model=artifact.name,
        )
        self.openapi_body = json.dumps(self.openapi, indent=2).encode()

    def predict(self, body: bytes) -> tuple[int, bytes]:
        """(status, JSON body) for a POST /predict body; never raises."""
        try:
            request = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            return 400, error_body(400, f"request body is not valid JSON: {exc}", "body")
        instances = request.get("instances") if type(request) is dict else None
        if type(instances) is not list or not instances:
            return 400, error_body(
                400, 'expected {"instances": [...]} with at least one instance', "instances"
            )
        try:
            predictions = self.predictor.predict(instances)
        except InstanceError as exc:
            return 400, error_body(400, str(exc), exc.field)
        except Exception:
            log.exception("prediction failed")
            return 500, error_body(500, "prediction failed; see the server log")
        if type(predictions) is not list or len(predictions) != len(instances):
            log.error("predictor returned %r for %d instances", type(predictions), len(instances))
            return 500, error_body(500, "predictor returned the wrong number of predictions")
        try:
            out = json.dumps(predictions)
        except (TypeError, ValueError):
            log.exception("predictions are not JSON-serialisable")
            return 500, error_body(500, "predictions are not JSON-serialisable")
        return 200, f'{{"predictions": {out}, "model": {self.model_json}}}'.encode()


def build_app(
    artifact: Path | str,
    *,
    service: str | None = None,
    base_path: str | None = None,
    endpoints_service: str = DEFAULT_ENDPOINTS_SERVICE,
    aliases: tuple[str, ...] = (),
) -> ModelApp:
    """Load and verify the artifact, its predictor, and the routes. Raises MlplaneError.

    `aliases` are further URL prefixes the same routes answer under (e.g. a revision's own
    route beside its service's); the OpenAPI document names `base_path` only."""
    loaded = load_artifact(artifact)
    predictor = load_predictor(loaded)
    name = service if service is not None else loaded.name
    try:
        check_service(name)
    except ValueError as exc:
        hint = "" if service is not None else " (the artifact's name; pass --service)"
        raise ConfigError("mlplane.serving", "--service", f"{exc}{hint}") from None
    try:
        base = normalize_base_path(base_path if base_path is not None else default_base_path(name))
    except ValueError as exc:
        raise ConfigError("mlplane.serving", "--base-path", str(exc)) from None
    try:
        extra = tuple(normalize_base_path(a) for a in aliases)
    except ValueError as exc:
        raise ConfigError("mlplane.serving", "--alias", str(exc)) from None
    try:
        check_endpoints_service(endpoints_service)
    except ValueError as exc:
        raise ConfigError("mlplane.serving", "--endpoints-service", str(exc)) from None
    return ModelApp(
        loaded,
        predictor,
        service=name,
        base_path=base,
        endpoints_service=endpoints_service,
        aliases=extra,
    )
