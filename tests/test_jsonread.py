"""`mlplane.jsonread.loads` answers exactly as `json.loads`: the same value or the same error."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlplane import jsonread

CASES = [
    '{"a": [1, 2.5, -3e2, "x\\u00e9\\n", null, true, false]}',
    "  [] \n",
    "\t{}\r\n",
    '"text"',
    "12",
    "-0.0",
    "1e400",
    "NaN",
    "[Infinity, -Infinity]",
    '{"a": 1, "a": 2}',
    '"\\ud800"',
    "",
    "   ",
    "[1,]",
    '{"a": }',
    '{"a" 1}',
    "[1] [2]",
    "[1] x",
    "nul",
    "\ufeff[1]",
    '"a\tb"',  # a control character: strict mode refuses it
    "[1, 2",
    '{"a": "\\x"}',
]


def outcome(fn: object, s: str | bytes) -> tuple[str, object]:
    try:
        value = fn(s)  # type: ignore[operator]
    except ValueError as exc:
        return "error", (type(exc), str(exc))
    return "value", repr(value)


@pytest.mark.parametrize("text", CASES)
def test_text_as_json_loads(text: str) -> None:
    assert outcome(jsonread.loads, text) == outcome(json.loads, text)


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": "\xc3\xa9"}',
        b"\xef\xbb\xbf[1]",  # UTF-8 BOM
        b"\xff\xfe[\x001\x00]\x00",  # UTF-16-LE BOM
        b"[\x001\x00]\x00",  # UTF-16-LE without a BOM
        b'"\xff"',  # not UTF-8
        b"",
        b"7",
        bytearray(b"[true]"),
    ],
)
def test_bytes_as_json_loads(data: bytes) -> None:
    assert outcome(jsonread.loads, data) == outcome(json.loads, data)


def test_nan_is_a_float_nan() -> None:
    assert math.isnan(jsonread.loads("NaN"))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(JSON, st.sampled_from(["", " ", "\n\t", "x", "]", ","]))
def test_any_document_as_json_loads(value: object, tail: str) -> None:
    text = json.dumps(value) + tail
    assert outcome(jsonread.loads, text) == outcome(json.loads, text)
    assert outcome(jsonread.loads, text.encode()) == outcome(json.loads, text.encode())


@given(st.text(alphabet='[]{}",:0123456789.eE+-tfnrulsaINfy \\u', max_size=12))
def test_fragments_as_json_loads(text: str) -> None:
    assert outcome(jsonread.loads, text) == outcome(json.loads, text)


def test_reading_imports_neither_json_nor_re() -> None:
    code = (
        "import sys; from mlplane import jsonread; "
        "assert jsonread.loads(' {\"a\": [1, 2.5, null]} ') == {'a': [1, 2.5, None]}; "
        "print(sorted(m for m in ('json', 're', 'enum') if m in sys.modules))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "[]"
