"""Validate JSON bodies against discovery schemas, as Google's front end does.

`validate(api, "UrlMap", body, method_id="compute.urlMaps.insert")` returns the violations in
the order Google reports them: unknown fields ("Cannot find field"), wrong types or enum
values ("Invalid value at ..."), then fields the method requires that are missing. Output-only
fields are accepted and ignored in requests (clients echo them back from a `get`).

`strip_output_only(api, "UrlMap", body)` drops output-only fields (recursively): what a spec
reads back from a response.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .discovery import Api

_INT_FORMATS = ("int32", "uint32")
_STRING_INT_FORMATS = ("int64", "uint64")


@dataclass(frozen=True)
class Violation:
    field: str  # e.g. resource.properties.machineType
    description: str
    reason: str  # "invalid" (unknown field, bad type or value) or "required"


def _is_int(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.lstrip("-").isdigit()


def _type_ok(schema: dict[str, Any], value: object) -> bool:
    t = schema.get("type")
    fmt = schema.get("format")
    if t == "string":
        if fmt in _STRING_INT_FORMATS:
            return _is_int(value)
        return isinstance(value, str)
    if t == "integer":
        return _is_int(value)
    if t == "number":
        return (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
            isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity")
        )
    if t == "boolean":
        return isinstance(value, bool)
    if t == "array":
        return isinstance(value, list)
    if t == "object" or "properties" in schema:
        return isinstance(value, dict)
    return True  # "any"


def _type_name(schema: dict[str, Any]) -> str:
    fmt = schema.get("format")
    if "enum" in schema:
        return "TYPE_ENUM"
    return f"TYPE_{(fmt or schema.get('type') or 'message').upper()}"


class _Walker:
    def __init__(self, api: Api, method_id: str | None) -> None:
        self.api = api
        self.method_id = method_id

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.api.schema(schema["$ref"])
        return schema

    def walk(self, schema: dict[str, Any], value: object, where: str) -> Iterator[Violation]:
        schema = self.resolve(schema)
        if value is None:
            return
        if not _type_ok(schema, value):
            yield Violation(
                where,
                f"Invalid value at '{where}' ({_type_name(schema)}), {_show(value)}",
                "invalid",
            )
            return
        if "enum" in schema and value not in schema["enum"]:
            yield Violation(
                where, f"Invalid value at '{where}' (TYPE_ENUM), {_show(value)}", "invalid"
            )
            return
        if isinstance(value, list):
            items = schema.get("items", {})
            for i, item in enumerate(value):
                yield from self.walk(items, item, f"{where}[{i}]")
            return
        if not isinstance(value, dict):
            return
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None:
            if isinstance(extra, dict):
                for key, item in value.items():
                    yield from self.walk(extra, item, f"{where}[{key!r}]")
            return
        for key, item in value.items():
            sub = props.get(key)
            if sub is None:
                yield Violation(
                    where,
                    f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
                    "Cannot find field.",
                    "invalid",
                )
                continue
            if sub.get("outputOnly"):
                continue
            yield from self.walk(sub, item, f"{where}.{key}")
        if self.method_id:
            for key, sub in props.items():
                if self.method_id in sub.get("requiredFor", ()) and value.get(key) in (None, ""):
                    yield Violation(
                        f"{where}.{key}",
                        f"Required field '{where}.{key}' not specified",
                        "required",
                    )


def _show(value: object) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 80 else text[:77] + "..."


def validate(
    api: Api,
    schema: str,
    body: object,
    *,
    method_id: str | None = None,
    root: str = "resource",
) -> list[Violation]:
    """Every violation of `body` against `schema` (empty: valid)."""
    walker = _Walker(api, method_id)
    found = list(walker.walk({"$ref": schema}, body, root))
    return sorted(found, key=lambda v: v.reason == "required")


def strip_output_only(api: Api, schema: str, body: Any) -> Any:
    """`body` without its output-only fields (recursively, following the schema)."""
    walker = _Walker(api, None)

    def strip(s: dict[str, Any], value: Any) -> Any:
        s = walker.resolve(s)
        if isinstance(value, list):
            return [strip(s.get("items", {}), v) for v in value]
        if not isinstance(value, dict):
            return value
        props = s.get("properties")
        if props is None:
            extra = s.get("additionalProperties")
            if isinstance(extra, dict):
                return {k: strip(extra, v) for k, v in value.items()}
            return value
        out = {}
        for key, item in value.items():
            sub = props.get(key)
            if sub is None or sub.get("outputOnly"):
                continue
            out[key] = strip(sub, item)
        return out

    return strip({"$ref": schema}, body)


def output_only_fields(api: Api, schema: str) -> frozenset[str]:
    """Top-level output-only field names of a schema (e.g. id, selfLink, fingerprint...)."""
    props = api.schema(schema).get("properties", {})
    return frozenset(k for k, v in props.items() if v.get("outputOnly"))
