"""The revision's OpenAPI 2.0 document, shaped for merging into the Cloud Endpoints config.

Paths sit under the revision's base path (`/v1/models/{service}` by default, the prefix the URL
map routes to the revision); operationIds are the service name in camelCase plus the operation
(`sentiment-v2` -> `sentimentV2Predict`), as `mlplane.model.compute_revision.api_paths` derives
them, so every revision's operations are unique within the merged document. Operations carry
only the fields `mlplane.model`'s OpenApiOperation accepts, so the document validates there too.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_ENDPOINTS_SERVICE = "mlplane.endpoints.local.cloud.goog"
PREDICT = "/predict"
HEALTH = "/healthz"
OPENAPI = "/openapi.json"

_SERVICE_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_SEGMENT_RE = re.compile(r"[A-Za-z0-9._~-]+")
_JSON = ["application/json"]


def check_service(name: str) -> str:
    """A service name as GCP resource names go: lowercase letters, digits, inner dashes."""
    if len(name) > 63 or not _SERVICE_RE.fullmatch(name):
        raise ValueError(
            f"service name '{name}' must match [a-z]([-a-z0-9]*[a-z0-9])? (at most 63 characters)"
        )
    return name


def check_endpoints_service(name: str) -> str:
    """The Endpoints service (OpenAPI `host`): a DNS name of lowercase labels."""
    labels = name.split(".")
    if (
        len(name) > 253
        or len(labels) < 2
        or not all(len(label) <= 63 and _SERVICE_RE.fullmatch(label) for label in labels)
    ):
        raise ValueError(
            f"Endpoints service '{name}' must be a DNS name of lowercase labels, "
            "e.g. 'mlplane.endpoints.my-proj.cloud.goog'"
        )
    return name


def default_base_path(service: str) -> str:
    return f"/v1/models/{service}"


def normalize_base_path(base_path: str) -> str:
    """'/v1/models/x/' -> '/v1/models/x'; '' or '/' -> '' (no prefix). ValueError when malformed."""
    stripped = base_path.strip("/")
    if not stripped:
        return ""
    if not base_path.startswith("/") or not all(
        _SEGMENT_RE.fullmatch(seg) and seg not in (".", "..") for seg in stripped.split("/")
    ):
        raise ValueError(
            f"base path '{base_path}' must start with '/' and hold only path segments of "
            "letters, digits and . _ ~ - (e.g. /v1/models/sentiment)"
        )
    return "/" + stripped


def operation_prefix(service: str) -> str:
    parts = service.split("-")
    return parts[0] + "".join(p.capitalize() for p in parts[1:])


def _op(op_id: str, summary: str, responses: dict[str, str], post: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary}
    if post:
        op["consumes"] = _JSON
    op["produces"] = _JSON
    op["responses"] = {code: {"description": text} for code, text in responses.items()}
    return op


def openapi_document(
    *,
    service: str,
    base_path: str,
    version: str,
    endpoints_service: str = DEFAULT_ENDPOINTS_SERVICE,
    model: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI 2.0 document of one model revision (swagger, info, host, schemes, paths)."""
    prefix = operation_prefix(check_service(service))
    base = normalize_base_path(base_path)
    what = f"model '{model or service}' version {version}"
    return {
        "swagger": "2.0",
        "info": {
            "title": f"{service} model",
            "version": version,
            "description": f"mlplane model server for {what}",
        },
        "host": check_endpoints_service(endpoints_service),
        "schemes": ["http"],
        "paths": {
            base + PREDICT: {
                "post": _op(
                    f"{prefix}Predict",
                    'Predict: {"instances": [{feature: value}]} -> {"predictions": [...]}',
                    {
                        "200": "one prediction per instance, in order",
                        "400": "bad input; the error names the field",
                        "413": "request body over the size limit",
                    },
                    post=True,
                )
            },
            base + HEALTH: {
                "get": _op(
                    f"{prefix}Health",
                    "Health: the loaded model's name and version",
                    {"200": "serving", "503": "shutting down"},
                )
            },
            base + OPENAPI: {
                "get": _op(f"{prefix}OpenApi", "This document", {"200": "OpenAPI 2.0 document"})
            },
        },
    }
