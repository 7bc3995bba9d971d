"""Terraform JSON export: shape, references, determinism, and the policy it implies."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlplane.errors import ConfigError
from mlplane.iam.audit.terraform_policy import policy_set_from_terraform
from mlplane.iam.export.terraform import BINDING_TYPES, lit, render_terraform
from mlplane.iam.synthesis import IamPlan
from tests.iam.conftest_audit import cli, grant, plan_of, tf_doc

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
REF = re.compile(r"\$\{(google_[a-z_]+)\.([A-Za-z0-9_-]+)\.(name|email)\}")


@pytest.fixture
def plan(project_file: Path) -> IamPlan:
    return plan_of(project_file)


@pytest.fixture
def doc(plan: IamPlan) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(render_terraform(plan))
    return parsed


def test_resource_types_and_role_permissions(plan: IamPlan, doc: dict[str, Any]) -> None:
    resources = doc["resource"]
    assert set(resources) == {
        "google_service_account",
        "google_project_iam_custom_role",
        *BINDING_TYPES.values(),
    }
    roles = {r["role_id"]: r for r in resources["google_project_iam_custom_role"].values()}
    assert roles.keys() == {r.role_id for r in plan.roles}
    for role in plan.roles:
        assert roles[role.role_id]["permissions"] == sorted(role.permissions)
        assert roles[role.role_id]["stage"] == "GA" and roles[role.role_id]["project"] == "acme-ml"
    accounts = resources["google_service_account"].values()
    assert sorted(a["account_id"] for a in accounts) == sorted(
        sa.account_id for sa in plan.service_accounts
    )


def test_one_binding_resource_per_binding_and_member(plan: IamPlan, doc: dict[str, Any]) -> None:
    resources = doc["resource"]
    for kind, rtype in BINDING_TYPES.items():
        expected = sum(len(b.members) for b in plan.bindings if b.scope.kind == kind)
        assert len(resources[rtype]) == expected, kind
    conditional = [
        body for body in resources["google_project_iam_member"].values() if "condition" in body
    ]
    assert len(conditional) == sum(len(b.members) for b in plan.bindings if b.condition)
    assert all(set(c["condition"]) == {"title", "description", "expression"} for c in conditional)


def test_identifiers_are_valid_and_references_resolve(doc: dict[str, Any]) -> None:
    resources = doc["resource"]
    for rtype, blocks in resources.items():
        for name in blocks:
            assert IDENT.fullmatch(name), (rtype, name)
    text = json.dumps(doc)
    refs = REF.findall(text)
    assert refs, "bindings reference roles and accounts of the same document"
    for rtype, name, _ in refs:
        assert name in resources[rtype], f"{rtype}.{name}"
    assert "${" not in REF.sub("", text)  # no other interpolation
    for body in resources["google_project_iam_member"].values():
        assert body["role"].startswith("${google_project_iam_custom_role.")
    sa_bindings = resources["google_service_account_iam_member"].values()
    assert all(b["service_account_id"].startswith("${google_service_account.") for b in sa_bindings)
    members = {
        b["member"] for blocks in resources.values() for b in blocks.values() if "member" in b
    }
    assert {"user:alice@acme.com", "group:ml@acme.com"} <= members
    assert "serviceAccount:${google_service_account.training.email}" in members


def test_deterministic(project_file: Path, plan: IamPlan) -> None:
    first = render_terraform(plan)
    assert render_terraform(plan_of(project_file)) == first


def test_literal_template_sequences_are_escaped(project_file: Path) -> None:
    assert lit("cost ${var.x} and %{if}") == "cost $${var.x} and %%{if}"
    project_file.write_text(
        project_file.read_text()
        + '\n[[identities]]\nid = "aux-runtime"\nkind = "runtime"\nprocess = "cicd"\n'
        'title = "Aux"\ndescription = "uses ${HOME} and %{x}"\nactions = []\n'
    )
    plan = plan_of(project_file)
    doc = json.loads(render_terraform(plan))
    aux = doc["resource"]["google_service_account"]["aux-runtime"]
    assert aux["description"] == "uses $${HOME} and %%{x}"
    assert policy_set_from_terraform(doc, plan.project).project.bindings  # still resolvable


def test_the_implied_policy_resolves_our_interpolations(plan: IamPlan) -> None:
    policies = policy_set_from_terraform(tf_doc(plan), plan.project)
    sa_scopes = {p.scope.name for p in policies.resources if p.scope.kind == "serviceAccount"}
    assert "mlplane-training-adhoc@acme-ml.iam.gserviceaccount.com" in sa_scopes
    roles = {r.name for r in policies.roles}
    assert {b.role for p in policies.policies for b in p.bindings} <= roles
    members = {m for p in policies.policies for b in p.bindings for m in b.members}
    assert "serviceAccount:mlplane-training@acme-ml.iam.gserviceaccount.com" in members
    assert not any("${" in m for m in members)
    # one binding per role and condition, with every member that the export gave it
    bindings = policies.project.bindings
    users = [b for b in bindings if b.role.endswith("experimentationUsers.project")]
    assert [b.members for b in users] == [("user:alice@acme.com", "group:ml@acme.com")]


def test_the_implied_policy_rejects_what_it_cannot_resolve(plan: IamPlan) -> None:
    doc = tf_doc(plan)
    grant(doc, "dangling", "roles/viewer", "serviceAccount:${google_service_account.nope.email}")
    with pytest.raises(ConfigError) as exc:
        policy_set_from_terraform(doc, plan.project, "iam.tf.json")
    assert exc.value.source == "iam.tf.json"
    assert exc.value.location == "resource.google_service_account.nope"
    doc = tf_doc(plan)
    grant(doc, "bare", "roles/viewer", "alice@acme.com")
    with pytest.raises(ConfigError, match="not an IAM member") as exc:
        policy_set_from_terraform(doc, plan.project)
    assert exc.value.location == "resource.google_project_iam_member.bare.member"


def test_cli_writes_the_file_atomically_and_only_on_success(
    project_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "iam.tf.json"
    code, stdout, err = cli(capsys, "-f", str(project_file), "iam", "export", "-o", str(out))
    assert code == 0 and stdout == "" and "wrote" in err
    assert json.loads(out.read_text()) == json.loads(render_terraform(plan_of(project_file)))
    code, stdout, _ = cli(capsys, "-f", str(project_file), "iam", "export")
    assert code == 0 and stdout == out.read_text()
    project_file.write_text("[project]\nid = 'BAD'\n")
    other = tmp_path / "other.tf.json"
    code, _, err = cli(capsys, "-f", str(project_file), "iam", "export", "-o", str(other))
    assert code == 2 and "project.id" in err and not other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iam.tf.json", "mlplane.toml"]


def _terraform_can_init(directory: Path) -> bool:
    if shutil.which("terraform") is None:
        return False
    init = subprocess.run(
        ["terraform", "init", "-backend=false", "-input=false", "-no-color"],
        cwd=directory,
        capture_output=True,
        timeout=120,
    )
    return init.returncode == 0


@pytest.mark.slow
def test_terraform_validate_when_terraform_and_the_google_provider_are_available(
    plan: IamPlan, tmp_path: Path
) -> None:
    (tmp_path / "iam.tf.json").write_text(render_terraform(plan))
    if not _terraform_can_init(tmp_path):
        pytest.skip("terraform or its google provider is not available (offline)")
    result = subprocess.run(
        ["terraform", "validate", "-no-color"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_names_are_stable_and_unique_after_sanitizing() -> None:
    from mlplane.iam.export.terraform import _Names

    names = _Names()
    first = names("user:a.b@x.com")
    assert first == "user_a_b_x_com" and names("user:a.b@x.com") == first
    second = names("user:a_b@x.com")
    assert second.startswith("user_a_b_x_com_") and second != first
    assert names("9lives") == "r_9lives" and IDENT.fullmatch(names("-x-"))
