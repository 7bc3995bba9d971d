"""Property: whatever a project file or an IAM policy/roles file holds, loading it returns or
raises ConfigError, one line naming the file (and the field, when the document parses), with
no pydantic documentation link; never another exception."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlplane.errors import ConfigError
from mlplane.iam.audit.policy_files import read_policy, read_roles
from mlplane.iam.catalog import load_catalog
from mlplane.iam.loading import SHIPPED, load_project
from mlplane.iam.synthesis import Scope
from tests.conftest import PROJECT_TOML
from tests.loader_fuzz import (
    JSON_SOUP,
    TOML_SOUP,
    assert_clean,
    json_text,
    mutated,
    scratch,
    toml_document,
)

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples every run: CI is deterministic
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CATALOG = load_catalog()
ACTION = {
    "id": "serving.write-logs",
    "process": "serving",
    "who": "service_account",
    "requirement": "Write logs.",
    "reason": "Serving VMs log to Cloud Logging.",
    "grants": [{"scope": "project", "permissions": ["logging.logEntries.create"]}],
}
PROJECT: dict[str, Any] = {
    **tomllib.loads(PROJECT_TOML),
    "naming": {"prefix": "mlplane"},
    "resources": {"buckets": {"artifacts": "{project}-artifacts"}},
    "members": {"serving": ["group:ml@acme.com"]},
    "actions": [ACTION],
}
POLICY = {
    "bindings": [
        {"role": "roles/viewer", "members": ["user:alice@acme.com", "group:ml@acme.com"]},
        {
            "role": "projects/acme-ml/roles/deployer",
            "members": ["serviceAccount:ci@acme-ml.iam.gserviceaccount.com"],
            "condition": {"title": "t", "expression": "request.time < timestamp('2030-01-01')"},
        },
    ],
    "etag": "BwX=",
    "version": 3,
}
ROLES = [
    {
        "name": "projects/acme-ml/roles/deployer",
        "title": "Deployer",
        "includedPermissions": ["compute.instances.get"],
        "stage": "GA",
    }
]


def load_project_text(content: str | bytes) -> None:
    path = scratch() / "mlplane.toml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    try:
        load_project(path, CATALOG)
    except ConfigError as exc:
        assert_clean(str(exc), str(path), SHIPPED)


def test_the_base_documents_load() -> None:
    """The documents the properties change are valid, so each failure is the change's."""
    path = scratch() / "mlplane.toml"
    path.write_text(toml_document(PROJECT))
    assert load_project(path, CATALOG).project.project.id == "acme-ml"
    (path.parent / "policy.json").write_text(json.dumps(POLICY))
    assert len(read_policy(path.parent / "policy.json", Scope("project", "acme-ml")).bindings) == 2
    (path.parent / "roles.json").write_text(json.dumps(ROLES))
    assert read_roles([path.parent / "roles.json"])[0].permissions == {"compute.instances.get"}


@SETTINGS
@given(mutated(PROJECT))
def test_a_project_file_with_one_field_changed(change: tuple[Any, str]) -> None:
    data, where = change
    if not isinstance(data, dict):
        data = {"project": data}
    path = scratch() / "mlplane.toml"
    path.write_text(toml_document(data))
    try:
        load_project(path, CATALOG)
    except ConfigError as exc:
        # A shipped action whose grant needs what the change took away (a [resources] entry) is
        # reported at that action, in the shipped model, naming what is missing.
        assert_clean(str(exc), str(path), SHIPPED)
        assert exc.location, f"changed {where}: {exc}"  # the document parses: a field is named


@SETTINGS
@given(TOML_SOUP)
def test_a_project_file_of_toml_fragments(text: str) -> None:
    load_project_text(text)


@SETTINGS
@given(st.binary(max_size=200))
def test_a_project_file_of_bytes(blob: bytes) -> None:
    load_project_text(blob)


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 5000 + "]" * 5000,  # deeper than Python's recursion limit
        "[project]\nid = " + "1" * 5000,  # more digits than int() converts
        "[project]\nid = 1e999",
        '[project]\nid = "\\u0000"',
        '\ufeff[project]\nid = "acme-ml"',
    ],
)
def test_project_file_extremes(text: str) -> None:
    path = scratch() / "mlplane.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_project(path, CATALOG)
    assert_clean(str(err.value), str(path))


def read_policy_text(content: str) -> None:
    path = scratch() / "policy.json"
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        read_policy(path, Scope("project", "acme-ml"))
    except ConfigError as exc:
        assert_clean(str(exc), str(path))


def read_roles_text(content: str) -> None:
    path = scratch() / "roles.json"
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        read_roles([path])
    except ConfigError as exc:
        assert_clean(str(exc), str(path))


@SETTINGS
@given(mutated(POLICY))
def test_a_policy_file_with_one_field_changed(change: tuple[Any, str]) -> None:
    data, where = change
    path = scratch() / "policy.json"
    path.write_text(json_text(data))
    try:
        read_policy(path, Scope("project", "acme-ml"))
    except ConfigError as exc:
        assert_clean(str(exc), str(path))
        # A field is named, unless the document itself is not an object.
        assert exc.location or not isinstance(data, dict), f"changed {where}: {exc}"


@SETTINGS
@given(mutated(ROLES))
def test_a_roles_file_with_one_field_changed(change: tuple[Any, str]) -> None:
    data, _ = change
    path = scratch() / "roles.json"
    path.write_text(json_text(data))
    try:
        read_roles([path])
    except ConfigError as exc:
        assert_clean(str(exc), str(path))


@SETTINGS
@given(JSON_SOUP)
def test_policy_and_roles_files_of_json_fragments(text: str) -> None:
    read_policy_text(text)
    read_roles_text(text)


@pytest.mark.parametrize(
    "text", ["[" * 100_000, '{"a":' * 100_000, '{"version": ' + "1" * 5000 + "}", '{"etag": NaN}']
)
def test_policy_file_extremes(text: str) -> None:
    path = scratch() / "policy.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_policy(path, Scope("project", "acme-ml"))
    assert_clean(str(err.value), str(path))
