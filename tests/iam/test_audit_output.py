"""`mlplane iam audit` output at scale: JSON Lines written as found, the JSON document, a table
that summarises per principal and finding code with --limit, and --max-permissions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlplane.iam.audit.terraform_policy import policy_set_from_terraform
from mlplane.iam.synthesis import IamPlan
from tests.iam.conftest_audit import cli, grant, plan_of, tf_doc, write_policy_files


@pytest.fixture
def setup(project_file: Path) -> tuple[Path, IamPlan, list[str]]:
    plan = plan_of(project_file)
    doc = tf_doc(plan)
    for i in range(6):  # one user, six buckets: six findings, one table row
        grant(doc, f"b{i}", "roles/storage.admin", "user:eve@acme.com", f"bucket:bkt-{i}")
    grant(doc, "ed", "roles/editor", "user:mallory@acme.com")
    grant(doc, "pub", "roles/viewer", "allUsers")
    policies = policy_set_from_terraform(doc, plan.project)
    return project_file, plan, write_policy_files(policies, project_file.parent / "gcloud")


def run(capsys: pytest.CaptureFixture[str], setup: Any, *extra: str) -> tuple[int, str]:
    project_file, _, args = setup
    code, out, err = cli(capsys, "-f", str(project_file), "iam", "audit", *args, *extra)
    assert err == "", err
    return code, out


def test_jsonl_has_every_finding_then_a_summary(
    capsys: pytest.CaptureFixture[str], setup: Any
) -> None:
    code, out = run(capsys, setup, "--format", "jsonl")
    _, doc_text = run(capsys, setup, "--format", "json")
    document = json.loads(doc_text)
    lines = [json.loads(line) for line in out.splitlines()]
    *findings, summary = lines
    assert {f["type"] for f in findings} == {"finding"} and summary["type"] == "summary"
    assert summary["summary"] == document["summary"] and summary["failed"] is True
    assert code == 4
    strip = lambda f: {k: v for k, v in f.items() if k != "type"}  # noqa: E731
    key = lambda f: json.dumps(f, sort_keys=True)  # noqa: E731
    assert sorted(map(key, map(strip, findings))) == sorted(map(key, document["findings"]))
    editor = next(f for f in findings if f["code"] == "EXCESS" and "mallory" in f["principal"])
    assert editor["permission_count"] == len(editor["permissions"]) > 1000
    assert editor["permissions"] == sorted(editor["permissions"])


def test_max_permissions_cuts_lists_not_counts(
    capsys: pytest.CaptureFixture[str], setup: Any
) -> None:
    _, out = run(capsys, setup, "--format", "json", "--max-permissions", "3")
    findings = json.loads(out)["findings"]
    big = [f for f in findings if f["permission_count"] > 3]
    assert big and all(len(f["permissions"]) == 3 and f["permissions_truncated"] for f in big)
    small = [f for f in findings if 0 < f["permission_count"] <= 3]
    assert all("permissions_truncated" not in f for f in small)
    _, full = run(capsys, setup, "--format", "json")
    by_key = {(f["code"], f["principal"], f["scope"]): f for f in json.loads(full)["findings"]}
    for f in big:
        whole = by_key[(f["code"], f["principal"], f["scope"])]["permissions"]
        assert f["permissions"] == whole[:3]


def test_table_summarises_per_principal_and_code(
    capsys: pytest.CaptureFixture[str], setup: Any
) -> None:
    _, out = run(capsys, setup, "--format", "table", "--fail-on", "never")
    eve = [line for line in out.splitlines() if "user:eve@acme.com" in line]
    # six buckets, two codes (storage.objects.create is service-account-only): two rows of 6
    assert len(eve) == 2 and all("│ 6 " in row for row in eve)
    assert {"EXCESS" in row for row in eve} == {True, False}
    assert "findings in" in out and "more rows" not in out
    _, limited = run(capsys, setup, "--format", "table", "--limit", "2", "--fail-on", "never")
    assert "more rows (--limit 0 shows all)" in limited
    assert "allUsers" in limited  # most severe first: the public grant is kept


def test_bad_limit_is_one_clear_line(capsys: pytest.CaptureFixture[str], setup: Any) -> None:
    project_file, _, args = setup
    with pytest.raises(SystemExit):
        cli(capsys, "-f", str(project_file), "iam", "audit", *args, "--limit", "-1")
    assert "'-1' is negative" in capsys.readouterr().err
