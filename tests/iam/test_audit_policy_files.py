"""Reading gcloud's policy and role JSON: the accepted shapes, and clear errors for the rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlplane.errors import ConfigError
from mlplane.iam.audit.policy_files import (
    parse_scope_arg,
    policy_to_data,
    read_policy,
    read_policy_set,
    read_roles,
)
from mlplane.iam.synthesis import Scope
from tests.iam.conftest_audit import cli

PROJECT = Scope("project", "acme-ml")
GCLOUD_POLICY = {
    "auditConfigs": [{"auditLogConfigs": [{"logType": "DATA_READ"}], "service": "allServices"}],
    "bindings": [
        {"members": ["user:Alice@Acme.com", "group:ml@acme.com"], "role": "roles/viewer"},
        {
            "condition": {
                "description": "only train-* VMs",
                "expression": 'resource.name.startsWith("train-")',
                "title": "Training VMs only",
            },
            "members": ["serviceAccount:sa@acme-ml.iam.gserviceaccount.com"],
            "role": "projects/acme-ml/roles/mlplane.training.project.trainingVms",
        },
        {
            "members": ["deleted:user:bob@acme.com?uid=123", "projectOwner:acme-ml"],
            "role": "roles/storage.legacyBucketOwner",
        },
        {"members": ["allUsers", "domain:acme.com"], "role": "roles/logging.viewer"},
    ],
    "etag": "BwYc3Zxyz0A=",
    "version": 3,
}


def write(tmp_path: Path, data: Any, name: str = "policy.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def test_reads_what_gcloud_prints(tmp_path: Path) -> None:
    policy = read_policy(write(tmp_path, GCLOUD_POLICY), PROJECT)
    assert policy.version == 3 and policy.etag == "BwYc3Zxyz0A="
    first, conditional, stale, public = policy.bindings
    assert first.members == ("user:alice@acme.com", "group:ml@acme.com")  # emails compare lowercase
    assert first.where.endswith("policy.json: bindings[0]")
    assert conditional.condition is not None and conditional.condition.title == "Training VMs only"
    assert stale.members == ("deleted:user:bob@acme.com?uid=123", "projectOwner:acme-ml")
    assert public.members == ("allUsers", "domain:acme.com")
    # and back: the same shape
    again = read_policy(write(tmp_path, policy_to_data(policy), "again.json"), PROJECT)
    assert again.bindings == tuple(
        type(b)(b.role, b.members, b.condition, b.where.replace("policy.json", "again.json"))
        for b in policy.bindings
    )


def test_an_empty_policy_is_just_an_etag(tmp_path: Path) -> None:
    assert read_policy(write(tmp_path, {"etag": "ACAB"}), PROJECT).bindings == ()


@pytest.mark.parametrize(
    ("data", "location", "message"),
    [
        ({"bindings": {"role": "roles/viewer"}}, "bindings", "valid list"),
        ({"bindings": [{"members": ["user:a@acme.com"]}]}, "bindings[0].role", "Field required"),
        (
            {
                "bindings": [{"role": "roles/viewer", "members": ["user:a@acme.com"]}] * 3
                + [{"role": "roles/viewer", "members": ["alice@x.com"]}]
            },
            "bindings[3].members[0]",
            "is not an IAM member",
        ),
        (
            {"bindings": [{"role": "roles/viewer", "members": ["robot:a@acme.com"]}]},
            "bindings[0].members[0]",
            "unknown member kind 'robot'",
        ),
        (
            {"bindings": [{"role": "viewer", "members": ["user:a@acme.com"]}]},
            "bindings[0].role",
            "not an IAM role name",
        ),
        (
            {"bindings": [{"role": "roles/viewer", "members": [], "conditon": {}}]},
            "bindings[0].conditon",
            "unknown field",
        ),
        (
            {"bindings": [{"role": "roles/viewer", "members": [], "condition": {"title": "t"}}]},
            "bindings[0].condition.expression",
            "Field required",
        ),
        (["not", "a", "policy"], "", "valid dictionary"),
    ],
)
def test_shapes_that_are_not_gcloud_policies(
    tmp_path: Path, data: Any, location: str, message: str
) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as exc:
        read_policy(path, PROJECT)
    assert exc.value.source == str(path)
    assert exc.value.location == location
    assert message in exc.value.message


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "bindings": [\n    {"role": "roles/viewer",,}\n  ]\n}\n')
    with pytest.raises(ConfigError) as exc:
        read_policy(path, PROJECT)
    assert str(exc.value).startswith(f"{path}: line 3: not valid JSON")
    yaml = write(tmp_path, "bindings:\n- role: roles/viewer\n", "policy.yaml")
    with pytest.raises(ConfigError, match="write it with --format json"):
        read_policy(yaml, PROJECT)
    with pytest.raises(ConfigError, match="no such file"):
        read_policy(tmp_path / "absent.json", PROJECT)


def test_roles_from_describe_and_from_list(tmp_path: Path) -> None:
    described = {
        "name": "projects/acme-ml/roles/custom.one",
        "title": "One",
        "description": "d",
        "etag": "BwY=",
        "stage": "GA",
        "includedPermissions": ["storage.objects.get"],
    }
    listed = {k: v for k, v in described.items() if k != "includedPermissions"}
    listed["name"] = "projects/acme-ml/roles/custom.two"
    deleted = dict(described, name="projects/acme-ml/roles/custom.three", deleted=True)
    roles = read_roles(
        [write(tmp_path, described, "one.json"), write(tmp_path, [listed, deleted], "list.json")]
    )
    by_name = {r.name: r for r in roles}
    assert by_name["projects/acme-ml/roles/custom.one"].permissions == {"storage.objects.get"}
    assert by_name["projects/acme-ml/roles/custom.two"].permissions is None  # unexpandable
    assert not by_name["projects/acme-ml/roles/custom.three"].active
    with pytest.raises(ConfigError) as exc:
        read_roles([write(tmp_path, [described, {"name": "roles/viewer"}], "bad.json")])
    assert exc.value.location == "[1].name" and "not a custom role name" in exc.value.message


@pytest.mark.parametrize(
    ("arg", "scope"),
    [
        ("bucket:b1=f.json", Scope("bucket", "b1")),
        (
            "serviceAccount:SA@p.iam.gserviceaccount.com=f.json",
            Scope("serviceAccount", "sa@p.iam.gserviceaccount.com"),
        ),
        ("repository:us-central1/images=f.json", Scope("repository", "images", "us-central1")),
        (
            "endpointsService:models.endpoints.p.cloud.goog=f.json",
            Scope("endpointsService", "models.endpoints.p.cloud.goog"),
        ),
    ],
)
def test_resource_policy_arguments(arg: str, scope: Scope) -> None:
    assert parse_scope_arg(arg) == (scope, Path("f.json"))


@pytest.mark.parametrize(
    ("arg", "message"),
    [("bucket=f.json", "write KIND:NAME=FILE"), ("disk:d1=f.json", "unknown kind 'disk'")],
)
def test_bad_resource_policy_arguments(arg: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_scope_arg(arg)


def test_the_same_resource_twice_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, {"etag": "x"})
    twice = [(Scope("bucket", "b"), path), (Scope("bucket", "b"), path)]
    with pytest.raises(ConfigError, match="bucket:b is given twice"):
        read_policy_set("acme-ml", path, (), twice)


def test_cli_bad_policy_names_file_and_field_and_writes_nothing(
    project_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = project_file.parent
    bad = {"bindings": [{"role": "roles/viewer", "members": ["user:a@acme.com"]}] * 3}
    bad["bindings"].append({"role": "roles/viewer", "members": ["alice@x.com"]})
    path = write(directory, bad)
    before = sorted(directory.rglob("*"))
    code, out, err = cli(capsys, "-f", str(project_file), "iam", "audit", "--policy", str(path))
    assert code == 2 and out == ""
    assert err.startswith(f"error: {path}: bindings[3].members[0]: 'alice@x.com' is not an IAM")
    args = ["-f", str(project_file), "iam", "audit", "--policy", str(path)]
    code, _, err = cli(capsys, *args, "--resource-policy", "bucket:b")
    assert code == 2 and "--resource-policy" in err and "KIND:NAME=FILE" in err
    assert sorted(directory.rglob("*")) == before


def test_a_storage_policy_must_be_of_the_bucket_it_is_given_for(tmp_path: Path) -> None:
    data = {"bindings": [], "etag": "CAE=", "kind": "storage#policy"}
    path = write(tmp_path, {**data, "resourceId": "projects/_/buckets/b1"})
    assert read_policy(path, Scope("bucket", "b1")).bindings == ()
    with pytest.raises(ConfigError, match="policy of projects/_/buckets/b1, not of bucket b2"):
        read_policy(path, Scope("bucket", "b2"))
