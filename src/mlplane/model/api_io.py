"""Reading specs back from Google's responses: keep the fields a spec models, and compare a
desired spec with a live one on what the desired spec says.

A response carries more than mlplane sends: output-only fields (dropped by the discovery
schema), fields mlplane does not model (dropped here, by the spec's own fields), and
server-defaulted values (ignored by `is_subset`: what mlplane did not send is not drift).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (Optional, Annotated, tuple[X, ...], dict[str,
    X]), or None."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _model_of(get_args(annotation)[0])
    if origin in (Union, types.UnionType, tuple, list, dict):
        for arg in get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def modeled(model: type[BaseModel], data: Any) -> Any:
    """`data` (wire JSON) restricted, recursively, to the fields `model` declares."""
    if isinstance(data, list):
        return [modeled(model, item) for item in data]
    if not isinstance(data, Mapping):
        return data
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        key = alias if alias in data else name if name in data else None
        if key is None:
            continue
        value = data[key]
        inner = _model_of(info.annotation)
        if inner is not None:
            if isinstance(value, Mapping) and get_origin(info.annotation) is dict:
                value = {k: modeled(inner, v) for k, v in value.items()}
            else:
                value = modeled(inner, value)
        out[alias] = value
    return out


def is_subset(sent: Any, live: Any) -> bool:
    """Whether every value in `sent` is in `live` (dicts: key by key; lists: item by item, same
    length; scalars: equal, with int64 strings equal to their numbers)."""
    if isinstance(sent, Mapping):
        return isinstance(live, Mapping) and all(
            k in live and is_subset(v, live[k]) for k, v in sent.items()
        )
    if isinstance(sent, list):
        return (
            isinstance(live, list)
            and len(sent) == len(live)
            and all(is_subset(a, b) for a, b in zip(sent, live, strict=True))
        )
    if sent == live:
        return True
    return str(sent) == str(live) and not isinstance(sent, bool) and not isinstance(live, bool)


def last_segment(value: object) -> object:
    """`https://.../zones/us-central1-a` -> `us-central1-a` (other values unchanged)."""
    return value.rstrip("/").rsplit("/", 1)[-1] if isinstance(value, str) else value
