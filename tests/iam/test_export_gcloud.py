"""gcloud script exports, without gcloud: valid bash, deterministic, condition escaping, and the
IAM-only script's prerequisite check. The scripts run for real against Google's tools in
test_export_gcloud_real.py."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from mlplane.iam.export.foundation import build_foundation
from mlplane.iam.export.gcloud import condition_flag, render_gcloud, role_description, role_tag
from mlplane.iam.export.gcloud_foundation import render_foundation_gcloud
from mlplane.iam.loading import load_project
from mlplane.iam.synthesis import IamPlan, synthesize
from tests.iam.conftest_audit import plan_of

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")


@pytest.fixture
def plan(project_file: Path) -> IamPlan:
    return plan_of(project_file)


def test_syntax_header_and_determinism(project_file: Path, plan: IamPlan, tmp_path: Path) -> None:
    loaded = load_project(project_file)
    scripts = {
        "iam.sh": render_gcloud(plan),
        "all.sh": render_foundation_gcloud(build_foundation(loaded, plan)),
    }
    for name, script in scripts.items():
        (tmp_path / name).write_text(script)
        assert subprocess.run([str(BASH), "-n", str(tmp_path / name)]).returncode == 0
        lines = script.splitlines()
        assert lines[0] == "#!/usr/bin/env bash"
        assert "set -euo pipefail" in lines and "PROJECT=acme-ml" in lines
    assert render_gcloud(plan) == render_gcloud(plan_of(project_file))
    again = load_project(project_file)
    assert scripts["all.sh"] == render_foundation_gcloud(build_foundation(again, synthesize(again)))


def test_every_binding_is_wanted_once_at_its_scope(plan: IamPlan) -> None:
    script = render_gcloud(plan)
    wanted = []
    for line in script.splitlines():
        if line.startswith("grant "):
            for b in json.loads(shlex.split(line)[3]):
                wanted += [(b["role"], m) for m in b["members"]]
    expected = {
        (b.role.name, m) for b in plan.bindings for m in b.members
        if b.scope.kind != "endpointsService"
    }  # fmt: skip
    assert sorted(wanted) == sorted(expected)


def test_role_tags_follow_content(plan: IamPlan) -> None:
    role = plan.roles[0]
    assert role_tag(role) == role_tag(replace(role))
    changed = replace(role, permissions=(*role.permissions, "compute.instances.list"))
    assert role_tag(changed) != role_tag(role)
    assert len(role_description(role)) <= 256 and role_description(role).endswith(
        f"[mlplane:{role_tag(role)}]"
    )


def test_a_condition_with_commas_declares_another_delimiter(plan: IamPlan) -> None:
    binding = next(b for b in plan.bindings if b.condition)
    assert binding.condition is not None
    odd = replace(binding.condition, expression='resource.name.startsWith("a,b")')
    flag = condition_flag(replace(binding, condition=odd))
    assert flag.strip("'") == (
        f'--condition=^;^expression=resource.name.startsWith("a,b");title={odd.title};'
        f"description=mlplane: {', '.join(binding.actions)}"
    )


def test_iam_only_script_checks_what_its_bindings_need(plan: IamPlan) -> None:
    script = render_gcloud(plan)
    head = script[: script.index("# --- service accounts")]
    for needed in (
        "gcloud storage buckets describe gs://acme-ml-mlplane-artifacts",
        "gcloud secrets describe graph-readonly",
        "gcloud artifacts repositories describe mlplane --location=us-central1",
        "gcloud endpoints services describe models.endpoints.acme-ml.cloud.goog",
    ):
        assert needed in head
    assert "mlplane export creates them" in head
