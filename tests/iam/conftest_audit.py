"""Helpers for the export and audit tests (imported explicitly, not a conftest plugin)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mlplane.cli.main import main
from mlplane.iam.audit.engine import audit
from mlplane.iam.audit.findings import AuditReport
from mlplane.iam.audit.policy import PolicySet
from mlplane.iam.audit.policy_files import policy_to_data, roles_to_data
from mlplane.iam.audit.terraform_policy import policy_set_from_terraform
from mlplane.iam.export.terraform import terraform_document
from mlplane.iam.loading import load_project
from mlplane.iam.synthesis import IamPlan, synthesize

TRAINING_SA = "mlplane-training@acme-ml.iam.gserviceaccount.com"
SERVING_SA = "mlplane-serving@acme-ml.iam.gserviceaccount.com"
BUCKET = "acme-ml-mlplane-artifacts"


def plan_of(project_file: Path) -> IamPlan:
    return synthesize(load_project(project_file))


def tf_doc(plan: IamPlan) -> dict[str, Any]:
    """A fresh, mutable copy of our Terraform export."""
    return copy.deepcopy(terraform_document(plan))


def add_resource(doc: dict[str, Any], rtype: str, name: str, body: dict[str, Any]) -> None:
    doc["resource"].setdefault(rtype, {})[name] = body


def audit_doc(plan: IamPlan, doc: dict[str, Any], admins: tuple[str, ...] = ()) -> AuditReport:
    return audit(plan, policy_set_from_terraform(doc, plan.project), admins=admins)


def write_policy_files(policies: PolicySet, directory: Path) -> list[str]:
    """Write a PolicySet as the files gcloud would print; returns the audit's CLI arguments."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policy.json").write_text(json.dumps(policy_to_data(policies.project)))
    (directory / "roles.json").write_text(json.dumps(roles_to_data(policies.roles)))
    args = ["--policy", str(directory / "policy.json"), "--roles", str(directory / "roles.json")]
    for i, p in enumerate(policies.resources):
        path = directory / f"resource{i}.json"
        path.write_text(json.dumps(policy_to_data(p)))
        name = f"{p.scope.location}/{p.scope.name}" if p.scope.location else p.scope.name
        args += ["--resource-policy", f"{p.scope.kind}:{name}={path}"]
    return args


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cli_audit(
    capsys: pytest.CaptureFixture[str],
    project_file: Path,
    plan: IamPlan,
    doc: dict[str, Any],
    *extra: str,
) -> tuple[int, dict[str, Any]]:
    """Run `mlplane iam audit --format json` on the files the Terraform document implies."""
    policies = policy_set_from_terraform(doc, plan.project)
    args = write_policy_files(policies, project_file.parent / "gcloud")
    code, out, err = cli(
        capsys, "-f", str(project_file), "iam", "audit", *args, "--format", "json", *extra
    )
    assert err == "", err
    result: dict[str, Any] = json.loads(out)
    return code, result


def grant(doc: dict[str, Any], name: str, role: str, member: str, scope: str = "project") -> None:
    """Add a binding resource to a Terraform document. `scope`: project, bucket:NAME or
    serviceAccount:IDENTITY (one of the document's service accounts)."""
    kind, _, ref = scope.partition(":")
    if kind == "project":
        add_resource(doc, "google_project_iam_member", name, {"project": "acme-ml"})
    elif kind == "bucket":
        add_resource(doc, "google_storage_bucket_iam_member", name, {"bucket": ref})
    else:
        sa = f"${{google_service_account.{ref}.name}}"
        add_resource(doc, "google_service_account_iam_member", name, {"service_account_id": sa})
    rtype = {"project": "google_project_iam_member", "bucket": "google_storage_bucket_iam_member"}
    doc["resource"][rtype.get(kind, "google_service_account_iam_member")][name].update(
        role=role, member=member
    )
