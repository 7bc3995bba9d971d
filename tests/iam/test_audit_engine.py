"""The audit against the policy our own Terraform export implies, and deliberate drifts from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlplane.iam.audit.findings import AuditReport, Finding, Severity
from mlplane.iam.audit.terraform_policy import policy_set_from_terraform
from mlplane.iam.synthesis import IamPlan
from tests.iam.conftest_audit import (
    BUCKET,
    SERVING_SA,
    TRAINING_SA,
    audit_doc,
    cli,
    cli_audit,
    grant,
    plan_of,
    tf_doc,
    write_policy_files,
)


@pytest.fixture
def plan(project_file: Path) -> IamPlan:
    return plan_of(project_file)


def only(report: AuditReport, code: str, principal: str | None = None) -> list[Finding]:
    return [f for f in report.findings if f.code == code and principal in (None, f.principal)]


def test_our_own_terraform_export_has_no_findings(plan: IamPlan) -> None:
    report = audit_doc(plan, tf_doc(plan))
    assert report.findings == ()
    # ... even though the model itself gives users actAs on runtime identities
    user_act_as = [
        b
        for b in plan.bindings
        if b.holder.startswith("users:") and "iam.serviceAccounts.actAs" in b.role.permissions
    ]
    assert {b.scope.name.split("@")[0] for b in user_act_as} == {
        "mlplane-experimentation",
        "mlplane-training-adhoc",
    }


def test_clean_policy_through_the_cli_exits_zero(
    project_file: Path, plan: IamPlan, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = cli_audit(capsys, project_file, plan, tf_doc(plan))
    assert code == 0
    assert result["findings"] == [] and result["failed"] is False
    assert result["fail_on"] == "medium"


def test_editor_for_the_training_sa(
    project_file: Path, plan: IamPlan, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tf_doc(plan)
    grant(doc, "editor", "roles/editor", "serviceAccount:${google_service_account.training.email}")
    report = audit_doc(plan, doc)
    member = f"serviceAccount:{TRAINING_SA}"
    [basic] = only(report, "BASIC_ROLE", member)
    assert basic.severity == Severity.HIGH and basic.roles == ("roles/editor",)
    [excess] = only(report, "EXCESS", member)
    assert excess.roles == ("roles/editor",) and "bigquery.datasets.create" in excess.permissions
    # the permissions the model does grant it are not excess
    assert "logging.logEntries.create" not in excess.permissions
    # editor includes actAs on every service account of the project
    [imp] = only(report, "IMPERSONATION", member)
    assert "iam.serviceAccounts.actAs" in imp.permissions and imp.severity == Severity.HIGH
    # the model grants artifact downloads on one repository and instance deletes on train-* VMs
    [broader] = only(report, "BROADER_SCOPE", member)
    assert "artifactregistry.repositories.downloadArtifacts" in broader.permissions
    assert "compute.instances.delete" in broader.permissions
    assert "repository:mlplane" in broader.explanation
    assert excess.sources == ("terraform: google_project_iam_member.editor",)
    # it is a service account: holding another identity's permissions is excess, not a user's
    assert "compute.instanceTemplates.create" in excess.permissions
    assert not only(report, "USER_HOLDS_SA_PERMISSION")

    code, result = cli_audit(capsys, project_file, plan, doc)
    assert code == 4 and result["failed"] is True
    assert {"BASIC_ROLE", "EXCESS"} <= {f["code"] for f in result["findings"]}


@pytest.mark.parametrize("where", ["project", "bucket"])
def test_all_users_anywhere(
    where: str, project_file: Path, plan: IamPlan, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tf_doc(plan)
    if where == "project":
        grant(doc, "public", "roles/logging.viewer", "allUsers")
    else:
        grant(doc, "public", "roles/storage.objectViewer", "allUsers", f"bucket:{BUCKET}")
    report = audit_doc(plan, doc)
    [public] = only(report, "PUBLIC_PRINCIPAL", "allUsers")
    assert public.severity == Severity.CRITICAL
    assert public.scope == ("project" if where == "project" else f"bucket:{BUCKET}")
    code, result = cli_audit(capsys, project_file, plan, doc)
    assert code == 4 and "PUBLIC_PRINCIPAL" in {f["code"] for f in result["findings"]}


def test_token_creator_for_a_user_on_the_serving_sa(
    project_file: Path, plan: IamPlan, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tf_doc(plan)
    token_creator = "roles/iam.serviceAccountTokenCreator"
    grant(doc, "impersonate", token_creator, "user:alice@acme.com", "serviceAccount:serving")
    report = audit_doc(plan, doc)
    [imp] = only(report, "IMPERSONATION", "user:alice@acme.com")
    assert imp.severity == Severity.CRITICAL
    assert imp.scope == f"serviceAccount:{SERVING_SA}"
    assert "iam.serviceAccounts.getAccessToken" in imp.permissions
    assert imp.roles == ("roles/iam.serviceAccountTokenCreator",)
    code, result = cli_audit(capsys, project_file, plan, doc)
    assert code == 4 and "IMPERSONATION" in {f["code"] for f in result["findings"]}


def test_removing_a_binding_reports_what_is_missing(
    project_file: Path, plan: IamPlan, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tf_doc(plan)
    bucket_bindings = doc["resource"]["google_storage_bucket_iam_member"]
    [name] = [
        n for n, b in bucket_bindings.items() if "google_service_account.training." in b["member"]
    ]
    del bucket_bindings[name]
    report = audit_doc(plan, doc)
    [missing] = report.findings
    assert missing.code == "MISSING" and missing.severity == Severity.LOW
    assert missing.principal == f"serviceAccount:{TRAINING_SA}"
    assert missing.scope == f"bucket:{BUCKET}"
    assert "storage.objects.create" in missing.permissions
    assert "training.write-artifacts" in missing.explanation
    # missing grants are drift, not risk: below the default threshold, at or above `low`
    assert cli_audit(capsys, project_file, plan, doc)[0] == 0
    code, result = cli_audit(capsys, project_file, plan, doc, "--fail-on", "low")
    assert code == 4 and [f["code"] for f in result["findings"]] == ["MISSING"]


def _move(doc: dict[str, Any], rtype: str, name_part: str, to_project: bool = True) -> None:
    """Re-grant a binding of ours at project level instead of on its resource."""
    bindings = doc["resource"][rtype]
    [name] = [n for n in bindings if name_part in n]
    body = bindings.pop(name)
    grant(doc, f"moved_{name}", body["role"], body["member"])


def test_a_bucket_grant_made_project_wide_is_broader_scope(plan: IamPlan) -> None:
    doc = tf_doc(plan)
    _move(doc, "google_storage_bucket_iam_member", "mlplane_trainingAdhoc_bucketArtifacts")
    report = audit_doc(plan, doc)
    member = "serviceAccount:mlplane-training-adhoc@acme-ml.iam.gserviceaccount.com"
    assert report.codes() == {"BROADER_SCOPE"}
    [f] = report.findings
    assert f.principal == member and f.scope == "project"
    assert set(f.permissions) == {"storage.objects.get", "storage.objects.list"}
    assert f"bucket:{BUCKET}" in f.explanation


def test_dropping_a_condition_is_broader_scope(plan: IamPlan) -> None:
    doc = tf_doc(plan)
    bindings = doc["resource"]["google_project_iam_member"]
    [name] = [n for n in bindings if n.startswith("mlplane_training_project_trainingVms")]
    del bindings[name]["condition"]
    report = audit_doc(plan, doc)
    [f] = report.findings
    assert f.code == "BROADER_SCOPE" and f.principal == f"serviceAccount:{TRAINING_SA}"
    assert set(f.permissions) == {"compute.instances.delete", "compute.instances.get"}
    assert "if Training VMs only" in f.explanation


def test_a_user_with_artifact_write_holds_a_service_account_only_permission(
    plan: IamPlan,
) -> None:
    doc = tf_doc(plan)
    grant(doc, "writer", "roles/storage.objectCreator", "group:ml@acme.com", f"bucket:{BUCKET}")
    report = audit_doc(plan, doc)
    [f] = only(report, "USER_HOLDS_SA_PERMISSION")
    assert f.principal == "group:ml@acme.com" and f.severity == Severity.HIGH
    assert "storage.objects.create" in f.permissions
    # the same grant to the training SA is what the model asks for: no such finding
    assert not only(audit_doc(plan, tf_doc(plan)), "USER_HOLDS_SA_PERMISSION")


def test_unknown_and_unexpandable_roles(plan: IamPlan) -> None:
    doc = tf_doc(plan)
    grant(doc, "typo", "roles/storage.objectViwer", "user:alice@acme.com")
    report = audit_doc(plan, doc)
    [f] = report.findings
    assert f.code == "UNKNOWN_ROLE" and f.severity == Severity.MEDIUM

    from mlplane.iam.audit.engine import audit
    from mlplane.iam.audit.policy import RoleDefinition

    listed = policy_set_from_terraform(tf_doc(plan), plan.project)
    stripped = tuple(RoleDefinition(r.name, r.title, r.stage, None) for r in listed.roles)
    report = audit(plan, type(listed)(listed.project, listed.resources, stripped, True))
    assert report.codes() == {"UNEXPANDABLE_ROLE"}  # and no MISSING: they cannot be checked
    assert "includedPermissions" in report.findings[0].explanation


def test_admins_service_agents_and_stale_members_do_not_fail_the_default(
    project_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project_file.write_text(
        project_file.read_text().replace(
            "[team.groups]", 'admins = ["user:root@acme.com"]\n\n[team.groups]'
        )
    )
    plan = plan_of(project_file)
    doc = tf_doc(plan)
    agent = "serviceAccount:service-123@compute-system.iam.gserviceaccount.com"
    grant(doc, "owner", "roles/owner", "user:root@acme.com")
    grant(doc, "agent", "roles/compute.serviceAgent", agent)
    grant(doc, "apis", "roles/editor", "serviceAccount:123@cloudservices.gserviceaccount.com")
    grant(doc, "stale", "roles/viewer", "deleted:user:old@acme.com?uid=42")
    legacy = "roles/storage.legacyBucketOwner"
    grant(doc, "legacy", legacy, "projectEditor:acme-ml", f"bucket:{BUCKET}")
    report = audit_doc(plan, doc, admins=("user:root@acme.com",))
    assert report.codes() == {
        "BASIC_ROLE",
        "ADMIN_GRANT",
        "SERVICE_AGENT",
        "DELETED_PRINCIPAL",
        "CONVENIENCE_MEMBER",
    }
    assert max(f.severity for f in report.findings) == Severity.LOW
    code, result = cli_audit(capsys, project_file, plan, doc)
    assert code == 0 and result["summary"]["low"] == 2
    code, _ = cli_audit(capsys, project_file, plan, doc, "--fail-on", "low")
    assert code == 4


def test_fail_on_thresholds_and_never(
    project_file: Path, plan: IamPlan, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tf_doc(plan)
    grant(doc, "viewer", "roles/logging.viewer", "user:eve@acme.com")
    assert {f.severity for f in audit_doc(plan, doc).findings} == {Severity.MEDIUM}
    assert cli_audit(capsys, project_file, plan, doc)[0] == 4
    assert cli_audit(capsys, project_file, plan, doc, "--fail-on", "high")[0] == 0
    assert cli_audit(capsys, project_file, plan, doc, "--fail-on", "never")[0] == 0


def test_severity_order_and_parse() -> None:
    assert Severity.INFO < Severity.LOW < Severity.MEDIUM < Severity.HIGH < Severity.CRITICAL
    assert Severity.parse("High") is Severity.HIGH
    with pytest.raises(ValueError, match="one of info, low, medium, high, critical"):
        Severity.parse("severe")


def test_authoritative_binding_resources_count_like_member_resources(plan: IamPlan) -> None:
    doc = tf_doc(plan)
    doc["resource"]["google_storage_bucket_iam_binding"] = {
        "readers": {
            "bucket": BUCKET,
            "role": "roles/storage.objectViewer",
            "members": ["user:eve@acme.com", "serviceAccount:${google_service_account.cicd.email}"],
        }
    }
    report = audit_doc(plan, doc)
    assert {(f.code, f.principal) for f in report.findings} == {
        ("EXCESS", "user:eve@acme.com"),
        ("EXCESS", "serviceAccount:mlplane-cicd@acme-ml.iam.gserviceaccount.com"),
    }


def test_table_output(
    project_file: Path, plan: IamPlan, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["-f", str(project_file), "iam", "audit"]
    implied = policy_set_from_terraform(tf_doc(plan), plan.project)
    code, out, _ = cli(capsys, *args, *write_policy_files(implied, project_file.parent / "a"))
    assert code == 0 and "no findings" in out
    doc = tf_doc(plan)
    grant(doc, "editor", "roles/editor", "user:eve@acme.com")
    implied = policy_set_from_terraform(doc, plan.project)
    code, out, _ = cli(capsys, *args, *write_policy_files(implied, project_file.parent / "b"))
    assert code == 4
    assert "BASIC_ROLE" in out and "user:eve@acme.com" in out and "more)" in out
    assert "--fail-on medium" in out.splitlines()[-1]


def test_users_who_build_as_a_privileged_default_account(plan: IamPlan) -> None:
    """The model lets its users create builds (to invoke triggers). That is no finding while no
    default build account holds anything; once one does, every such user holds it too."""
    doc = tf_doc(plan)
    assert only(audit_doc(plan, doc), "ARBITRARY_BUILD") == []
    legacy = "serviceAccount:123456789012@cloudbuild.gserviceaccount.com"
    grant(doc, "legacy", "roles/cloudbuild.builds.builder", legacy)
    report = audit_doc(plan, doc)
    found = only(report, "ARBITRARY_BUILD")
    # alice directly and the ml group: the training and serving users' invoke-triggers action
    assert {f.principal for f in found} == {"user:alice@acme.com", "group:ml@acme.com"}
    for f in found:
        assert f.severity == Severity.HIGH and "123456789012@cloudbuild" in f.explanation
        assert "roles/cloudbuild.builds.builder" in f.roles
        assert "storage.objects.create" in f.permissions  # what the builder role reaches
    compute_default = "serviceAccount:123456789012-compute@developer.gserviceaccount.com"
    doc2 = tf_doc(plan)
    grant(doc2, "gce", "roles/editor", compute_default)
    [first, *_] = only(audit_doc(plan, doc2), "ARBITRARY_BUILD")
    assert first.permission_count > 1000 and "-compute@developer" in first.explanation
