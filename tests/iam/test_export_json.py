"""JSON export: the plan with the actions (requirement, reason) that justify every binding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlplane.iam.export.json_format import FORMAT, plan_document
from mlplane.iam.loading import load_project
from mlplane.iam.synthesis import synthesize
from tests.iam.conftest_audit import cli


def test_plan_document(project_file: Path) -> None:
    loaded = load_project(project_file)
    plan = synthesize(loaded)
    doc = plan_document(plan, loaded)
    assert doc["format"] == FORMAT and doc["project"] == "acme-ml"
    assert [r["permissions"] for r in doc["roles"]] == [sorted(r.permissions) for r in plan.roles]
    assert len(doc["bindings"]) == len(plan.bindings)
    for entry, b in zip(doc["bindings"], plan.bindings, strict=True):
        assert entry["role"] == b.role.name and entry["members"] == list(b.members)
        assert entry["scope"]["kind"] == b.scope.kind and entry["actions"] == list(b.actions)
        assert all(a in doc["actions"] for a in entry["actions"])
    repo = next(e for e in doc["bindings"] if e["scope"]["kind"] == "repository")
    assert repo["scope"]["location"] == "us-central1"
    prefixes = {e["condition"]["name_prefix"] for e in doc["bindings"] if e["condition"]}
    assert prefixes == {"nb-", "train-", "srv-", "aux-"}
    write = doc["actions"]["training.write-artifacts"]
    assert write["who"] == "service_account" and write["via_triggers"] == ["train"]
    assert write["requirement"] == "Write files to Cloud Storage."
    assert "actions" not in plan_document(plan)


def test_cli_json_is_deterministic(project_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["-f", str(project_file), "iam", "export", "--format", "json"]
    code, first, _ = cli(capsys, *args)
    assert code == 0
    code, second, _ = cli(capsys, *args)
    assert first == second and json.loads(first)["project"] == "acme-ml"


def test_cli_gcloud_output_file_is_executable(
    project_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "iam.sh"
    args = ["-f", str(project_file), "iam", "export", "--format", "gcloud", "-o", str(out)]
    code, _, _ = cli(capsys, *args)
    assert code == 0 and out.read_text().startswith("#!/usr/bin/env bash")
    assert out.stat().st_mode & 0o111
    missing_dir = tmp_path / "no" / "such" / "iam.sh"
    code, _, err = cli(capsys, *args[:-1], str(missing_dir))
    assert code == 2 and "cannot write" in err
