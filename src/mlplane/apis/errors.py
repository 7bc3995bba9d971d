"""Google's JSON error shape, both ways.

    {"error": {"code": 404, "message": "...", "status": "NOT_FOUND",
               "errors": [{"message": "...", "domain": "global", "reason": "notFound"}]}}

Compute Engine reports `errors[].reason` (notFound, alreadyExists, conditionNotMet,
resourceInUseByAnotherResource, forbidden, invalid, required, ...); the newer APIs report
`status` (the google.rpc code name) and `details`. The agent renders both parts; the client
reads whichever is there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    409: "ALREADY_EXISTS",
    411: "INVALID_ARGUMENT",
    412: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


@dataclass(eq=False)
class ApiError(Exception):
    """An error answer of a Google API (raised by the agent's handlers, parsed by the client)."""

    code: int
    message: str
    reason: str = ""
    status: str = ""
    field_violations: tuple[tuple[str, str], ...] = field(default=())

    def __str__(self) -> str:
        return self.message

    @property
    def status_name(self) -> str:
        return self.status or STATUS_NAMES.get(self.code, "UNKNOWN")

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": self.status_name,
        }
        if self.reason:
            err["errors"] = [{"message": self.message, "domain": "global", "reason": self.reason}]
        if self.field_violations:
            err["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [
                        {"field": f, "description": d} for f, d in self.field_violations
                    ],
                }
            ]
        return {"error": err}

    @classmethod
    def from_json(cls, code: int, body: object) -> ApiError:
        """Parse an error body (any shape: a non-JSON or foreign body keeps its text)."""
        err = body.get("error") if isinstance(body, Mapping) else None
        if isinstance(err, str):  # OAuth endpoints: {"error": "invalid_grant", ...}
            text = body.get("error_description", err) if isinstance(body, Mapping) else err
            return cls(code, str(text), err)
        if not isinstance(err, Mapping):
            text = body if isinstance(body, str) else repr(body)
            return cls(code, f"HTTP {code}: {text}"[:500])
        errors = err.get("errors") or [{}]
        first = errors[0] if isinstance(errors[0], Mapping) else {}
        violations: list[tuple[str, str]] = []
        for detail in err.get("details") or ():
            if isinstance(detail, Mapping):
                for v in detail.get("fieldViolations") or ():
                    violations.append((str(v.get("field", "")), str(v.get("description", ""))))
        return cls(
            int(err.get("code", code)),
            str(err.get("message", "")),
            str(first.get("reason", "")),
            str(err.get("status", "")),
            tuple(violations),
        )


def not_found(what: str) -> ApiError:
    return ApiError(404, f"The resource '{what}' was not found", "notFound")


def already_exists(what: str) -> ApiError:
    return ApiError(409, f"The resource '{what}' already exists", "alreadyExists")


def bad_request(message: str, reason: str = "invalid") -> ApiError:
    return ApiError(400, message, reason)


def forbidden(message: str) -> ApiError:
    return ApiError(403, message, "forbidden")


def unauthenticated(message: str) -> ApiError:
    return ApiError(401, message, "authError", "UNAUTHENTICATED")
