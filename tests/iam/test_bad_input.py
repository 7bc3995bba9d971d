"""Bad input ends in a clear error naming the file and the field path; nothing is written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlplane.errors import ConfigError
from mlplane.iam.loading import load_project
from tests.conftest import PROJECT_TOML

ACTION = """
[[actions]]
id = "serving.write-logs"
process = "serving"
who = "service_account"
requirement = "Write logs."
reason = "Serving VMs log to Cloud Logging."
grants = [{ scope = "project", permissions = ["%s"] }]
"""


def load(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "mlplane.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_project(path)
    assert str(path) in str(info.value)
    return info.value


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    err = load(tmp_path, "[project\nid = 1")
    assert "not valid TOML" in str(err) and "line 1" in str(err)


def test_unknown_field_names_its_path(tmp_path: Path) -> None:
    err = load(tmp_path, PROJECT_TOML.replace("region =", "regoin ="))
    assert err.location == "project.regoin" and "unknown field" in err.message


def test_bad_project_id(tmp_path: Path) -> None:
    err = load(tmp_path, PROJECT_TOML.replace('id = "acme-ml"', 'id = "Acme_ML"'))
    assert err.location == "project.id" and "not a GCP project id" in err.message


def test_zone_outside_region(tmp_path: Path) -> None:
    err = load(tmp_path, PROJECT_TOML.replace('zone = "us-central1-a"', 'zone = "europe-west1-b"'))
    assert err.location == "project" and "not in region" in err.message


def test_unknown_permission_suggests_real_names(tmp_path: Path) -> None:
    err = load(tmp_path, PROJECT_TOML + ACTION % "logging.logEntrie.create")
    assert err.location == "actions[0].grants[0].permissions[0]"
    assert "logging.logEntries.create" in err.message


def test_unknown_principal_kind(tmp_path: Path) -> None:
    err = load(tmp_path, PROJECT_TOML.replace('"user:alice@acme.com"', '"alice@acme.com"'))
    assert err.location == "team.principals" and "not an IAM member" in err.message


def test_service_account_as_team_member(tmp_path: Path) -> None:
    text = PROJECT_TOML.replace(
        '"user:alice@acme.com"', '"serviceAccount:x@p.iam.gserviceaccount.com"'
    )
    assert "users, groups or domains" in load(tmp_path, text).message


def test_unknown_scope_reference(tmp_path: Path) -> None:
    text = (
        PROJECT_TOML
        + ACTION.replace('scope = "project"', 'scope = "bucket:nope"') % "storage.objects.get"
    )
    err = load(tmp_path, text)
    assert err.location == "actions[0].grants[0].scope" and "'bucket:nope'" in err.message


def test_user_attachable_identity_cannot_hold_trigger_only_actions(tmp_path: Path) -> None:
    text = (
        PROJECT_TOML
        + """
[[identities]]
id = "training-adhoc"
kind = "runtime"
process = "training"
title = "Ad-hoc training"
"""
    )
    err = load(tmp_path, text)
    assert "training.write-artifacts" in err.message and "trigger-only" in err.message


def test_disabled_action_must_exist(tmp_path: Path) -> None:
    err = load(tmp_path, 'disabled_actions = ["nope.nope"]\n' + PROJECT_TOML)
    assert err.location == "disabled_actions[0]"


def test_duplicate_added_action(tmp_path: Path) -> None:
    one = ACTION % "logging.logEntries.create"
    err = load(tmp_path, PROJECT_TOML + one + one)
    assert err.location == "actions[1].id" and "defined twice" in err.message


def test_valid_addition_and_override_load(tmp_path: Path) -> None:
    path = tmp_path / "mlplane.toml"
    path.write_text(PROJECT_TOML + ACTION % "logging.logEntries.create")
    loaded = load_project(path)
    assert loaded.model.action("serving.write-logs") is not None
    assert loaded.origins["actions:serving.write-logs"] == (str(path), "actions[0]")


def test_export_declarations_are_checked(tmp_path: Path) -> None:
    cases = {
        '[ci]\napproval = ["build-images"]\n': "ci.approval[0]: 'build-images' is not a manual",
        '[resources]\nexisting = ["bucket:nope"]\n': "names no bucket 'nope'",
        '[[auxiliary.instances]]\nname = "neo4j"\nimage = "x"\n': "auxiliary.instances[0].name",
        '[ci]\nrepository = "git@github.com:a/b"\n': "not a GitHub repository URL",
    }
    for extra, message in cases.items():
        path = tmp_path / "mlplane.toml"
        path.write_text(PROJECT_TOML + extra)
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_project(path)
