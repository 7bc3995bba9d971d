"""Hypothesis strategies for the loaders' bad-input properties: TOML and JSON documents made
from a valid one with one field changed (wrong types, odd unicode, huge or non-finite numbers,
unknown keys, deletions), TOML written from such data, and raw fragments glued together."""

from __future__ import annotations

import atexit
import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

PYDANTIC_DOCS = "errors.pydantic.dev"
_BASE = Path(tempfile.mkdtemp(prefix="mlplane-fuzz-"))
atexit.register(shutil.rmtree, _BASE, True)  # one directory per example, all removed at exit


def scratch() -> Path:
    """A fresh directory for one example (hypothesis runs many; pytest's tmp_path is one)."""
    return Path(tempfile.mkdtemp(dir=_BASE))


# Text with every kind of character but lone surrogates (not encodable to a file as UTF-8).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
ODD_TEXT = st.sampled_from(
    ["", " ", "\x00", "\n", "ü", "名前", "🙂", "a\u202eb", "\x7f", "x" * 5000, "${HOME}", "'\""]
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**63) - 1, max_value=2**63 + 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 10**30, -(10**30), 1e308, 5e-324]),
)
SCALARS = st.one_of(st.booleans(), NUMBERS, TEXT, ODD_TEXT)
VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(TEXT, ODD_TEXT), inner, max_size=4),
    ),
    max_leaves=12,
)


def toml_string(s: str) -> str:
    out = json.dumps(s, ensure_ascii=False)  # JSON's escapes are TOML's (\uXXXX, \n, \")
    return out.replace("\x7f", "\\u007f")


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_document(data: dict[str, Any]) -> str:
    """Every top-level key as `key = value` (inline tables): valid TOML for any such data."""
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in data.items())


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> tuple[Any, str]:
    """`base` with one thing changed somewhere: a value replaced, a key added or deleted.
    Returns the data and the path changed (`a.b[2]`), for messages."""

    def walk(node: Any, path: str) -> tuple[Any, str]:
        if isinstance(node, dict) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node)))
            copy = dict(node)
            copy[key], where = walk(node[key], f"{path}.{key}" if path else key)
            return copy, where
        if isinstance(node, list) and node and draw(st.booleans()):
            i = draw(st.integers(0, len(node) - 1))
            copy_l = list(node)
            copy_l[i], where = walk(node[i], f"{path}[{i}]")
            return copy_l, where
        action = draw(st.sampled_from(["replace", "add", "delete"]))
        if action == "add" and isinstance(node, dict):
            key = draw(st.one_of(TEXT, ODD_TEXT))
            return {**node, key: draw(VALUES)}, f"{path}.{key}"
        if action == "delete" and isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            return {k: v for k, v in node.items() if k != key}, f"{path}.{key}"
        return draw(VALUES), path

    data, where = walk(base, "")
    return data, where


TOML_FRAGMENTS = st.sampled_from(
    [
        "[project]\n", "[team]\n", "[[actions]]\n", "[naming]\n", "[resources.buckets]\n",
        "id = ", "name = ", "entrypoint = ", "principals = ", "bindings = ", "args = ",
        '"acme-ml"', '"x.py"', "1", "1" * 5000, "1e999", "nan", "-inf", "true", "1979-05-27",
        "[", "]", "{", "}", "=", ",", ".", '"', '"""', "'''", "\n", " ", "#", "\\", "\x00",
        "ü", "名前", "🙂", "[" * 2000, "{a = " * 1500, "\r\n", "\t", "0x", "+",
    ]
)  # fmt: skip
TOML_SOUP = st.lists(st.one_of(TOML_FRAGMENTS, TEXT), max_size=30).map("".join)

JSON_FRAGMENTS = st.sampled_from(
    [
        '{"bindings": [', '{"role": ', '"roles/viewer"', '"members": [', '"user:a@b.com"', "]",
        "}", "{", "[", ",", ":", '"', "null", "true", "1", "1" * 5000, "1e999", "NaN",
        "-Infinity", "\x00", "ü", "🙂", "[" * 5000, '{"a":' * 3000, '"\\ud800"', "\n",
        '"name": "projects/p/roles/r"', '"includedPermissions": [',
    ]
)  # fmt: skip
JSON_SOUP = st.lists(st.one_of(JSON_FRAGMENTS, TEXT), max_size=30).map("".join)


def json_text(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, allow_nan=True)


def assert_clean(message: str, source: str, *also: str) -> None:
    """One line that names the file (or one of `also`), with no pydantic documentation link."""
    assert any(s in message for s in (source, *also)), message
    assert PYDANTIC_DOCS not in message, message
    assert "\n" not in message and "\r" not in message, message
