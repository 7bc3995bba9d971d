"""Property: whatever a training spec (`train.toml`) holds, `load_spec` returns it or raises a
ConfigError, one line naming the file (and the field, when the document parses), with no
pydantic documentation link; never another exception."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlplane.errors import ConfigError
from mlplane.workflows.training import load_spec
from tests.loader_fuzz import TOML_SOUP, assert_clean, mutated, scratch, toml_document

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples every run: CI is deterministic
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# A script entrypoint (no module is imported to check it), with every field set.
SPEC: dict[str, Any] = {
    "name": "sentiment",
    "entrypoint": "train.py",
    "args": ["--out", "{output_dir}", "--seed", "7"],
    "env": {"SEED": "7", "MODE": "full"},
    "machine_type": "e2-standard-4",
    "max_run_duration_sec": 600,
}


def spec_file(content: str | bytes) -> Path:
    directory = scratch()
    (directory / "train.py").write_text("print('training')\n")
    path = directory / "train.toml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_the_base_spec_loads() -> None:
    spec = load_spec(spec_file(toml_document(SPEC)))
    assert (spec.name, spec.entrypoint, spec.env["SEED"]) == ("sentiment", "train.py", "7")


@SETTINGS
@given(mutated(SPEC))
def test_a_spec_with_one_field_changed(change: tuple[Any, str]) -> None:
    data, where = change
    if not isinstance(data, dict):
        data = {"name": data}
    path = spec_file(toml_document(data))
    try:
        load_spec(path)
    except ConfigError as exc:
        assert_clean(str(exc), str(path))
        assert exc.location, f"changed {where}: {exc}"


@SETTINGS
@given(TOML_SOUP)
def test_a_spec_of_toml_fragments(text: str) -> None:
    path = spec_file(text)
    try:
        load_spec(path)
    except ConfigError as exc:
        assert_clean(str(exc), str(path))


@SETTINGS
@given(st.binary(max_size=200))
def test_a_spec_of_bytes(blob: bytes) -> None:
    path = spec_file(blob)
    try:
        load_spec(path)
    except ConfigError as exc:
        assert_clean(str(exc), str(path))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("entrypoint", "tra\x00in.py"),  # a NUL cannot be in a path
        ("entrypoint", "../" * 3000 + "x.py"),
        ("entrypoint", "x" * 300 + ".py"),
        ("name", "n\u0301ame"),
        ("max_run_duration_sec", 10**30),
        ("max_run_duration_sec", float("nan")),
        ("args", [["nested"]]),
        ("env", {"A": {"B": "c"}}),
    ],
)
def test_spec_extremes(field: str, value: Any) -> None:
    path = spec_file(toml_document({**SPEC, field: value}))
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert_clean(str(err.value), str(path))
    assert err.value.location.startswith(field)
