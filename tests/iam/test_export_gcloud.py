"""gcloud script export: valid bash, one command per binding and member, quoting, re-runs.

The script runs for real against a stub `gcloud` that records its arguments, so the test sees
exactly what gcloud would receive after bash's quoting."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from mlplane.iam.export.gcloud import render_gcloud
from mlplane.iam.synthesis import IamPlan
from tests.iam.conftest_audit import plan_of

SEP = "\x1f"
STUB = f"""#!/usr/bin/env bash
# Records each call (arguments joined by US). With $STUB_EXISTING set, as on a second run,
# `describe` finds the account and `roles create` fails because the role exists.
(IFS='{SEP}'; printf '%s\\n' "$*") >> "$STUB_LOG"
case "$1 $2 $3" in
  "iam service-accounts describe") [ -n "${{STUB_EXISTING:-}}" ] || exit 1 ;;
  "iam roles create") [ -z "${{STUB_EXISTING:-}}" ] || exit 1 ;;
esac
exit 0
"""
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")


@pytest.fixture
def plan(project_file: Path) -> IamPlan:
    return plan_of(project_file)


def run_script(script: str, tmp_path: Path, existing: bool) -> list[list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "gcloud").write_text(STUB)
    (bin_dir / "gcloud").chmod(0o755)
    (tmp_path / "iam.sh").write_text(script)
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STUB_LOG": str(log),
        **({"STUB_EXISTING": "1"} if existing else {}),
    }
    result = subprocess.run(
        [str(BASH), str(tmp_path / "iam.sh")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return [line.split(SEP) for line in log.read_text().splitlines()]


def test_syntax_and_header(plan: IamPlan, tmp_path: Path) -> None:
    script = render_gcloud(plan)
    (tmp_path / "iam.sh").write_text(script)
    assert subprocess.run([str(BASH), "-n", str(tmp_path / "iam.sh")]).returncode == 0
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines and "PROJECT=acme-ml" in lines
    assert script.count("add-iam-policy-binding") == sum(len(b.members) for b in plan.bindings)


def test_deterministic(project_file: Path, plan: IamPlan) -> None:
    assert render_gcloud(plan) == render_gcloud(plan_of(project_file))


def test_first_run_creates_and_binds_exactly_the_plan(plan: IamPlan, tmp_path: Path) -> None:
    calls = run_script(render_gcloud(plan), tmp_path, existing=False)
    creates = [c for c in calls if c[:3] == ["iam", "service-accounts", "create"]]
    assert sorted(c[3] for c in creates) == sorted(sa.account_id for sa in plan.service_accounts)
    roles = [c for c in calls if c[:3] == ["iam", "roles", "create"]]
    assert not [c for c in calls if c[:3] == ["iam", "roles", "update"]]
    by_id = {c[3]: c for c in roles}
    for role in plan.roles:
        flag = f"--permissions={','.join(sorted(role.permissions))}"
        assert flag in by_id[role.role_id] and "--project" in by_id[role.role_id]
    bindings = {
        (_scope_of(c), _flag(c, "--member"), _flag(c, "--role"))
        for c in calls
        if "add-iam-policy-binding" in c
    }
    expected = {(str(b.scope), m, b.role.name) for b in plan.bindings for m in b.members}
    assert bindings == expected
    assert sum("add-iam-policy-binding" in c for c in calls) == len(expected)


def test_second_run_updates_in_place(plan: IamPlan, tmp_path: Path) -> None:
    calls = run_script(render_gcloud(plan), tmp_path, existing=True)
    assert not [c for c in calls if c[:3] == ["iam", "service-accounts", "create"]]
    updates = [c for c in calls if c[:3] == ["iam", "service-accounts", "update"]]
    assert len(updates) == len(plan.service_accounts)
    role_updates = [c for c in calls if c[:3] == ["iam", "roles", "update"]]
    assert sorted(c[3] for c in role_updates) == sorted(r.role_id for r in plan.roles)


def test_conditions_and_hostile_text_arrive_verbatim(project_file: Path, tmp_path: Path) -> None:
    hostile = 'it\'s $(touch pwned) `id`; \\"quoted\\", with commas'
    project_file.write_text(
        project_file.read_text()
        + f'\n[[identities]]\nid = "aux-runtime"\nkind = "runtime"\nprocess = "cicd"\n'
        f'title = "Aux"\ndescription = "{hostile}"\nactions = []\n'
    )
    plan = plan_of(project_file)
    calls = run_script(render_gcloud(plan), tmp_path, existing=False)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    [aux] = [
        c for c in calls if c[:4] == ["iam", "service-accounts", "create", "mlplane-aux-runtime"]
    ]
    assert _flag(aux, "--description") == hostile.replace('\\"', '"')
    conditional = [c for c in calls if "projects" in c and _flag(c, "--condition") != "None"]
    by_role = {b.role.name: b.condition for b in plan.bindings if b.condition}
    assert conditional and all(
        f"expression={cond.expression}{sep}title={cond.title}{sep}" in flag
        for c in conditional
        if (flag := _flag(c, "--condition")) and (sep := flag[1] if flag.startswith("^") else ",")
        if (cond := by_role[_flag(c, "--role")])
    )


def _flag(call: list[str], name: str) -> str:
    return next(a.partition("=")[2] for a in call if a.startswith(name + "="))


def _scope_of(call: list[str]) -> str:
    if call[0] == "projects":
        return "project"
    kind = {"storage": "bucket", "secrets": "secret", "artifacts": "repository",
            "endpoints": "endpointsService", "iam": "serviceAccount"}[call[0]]  # fmt: skip
    target = call[call.index("add-iam-policy-binding") + 1]
    return f"{kind}:{target.removeprefix('gs://')}"


def test_a_condition_with_commas_declares_another_delimiter(plan: IamPlan, tmp_path: Path) -> None:
    binding = next(b for b in plan.bindings if b.condition)
    assert binding.condition is not None
    odd = replace(binding.condition, expression='resource.name.startsWith("a,b")')
    one = replace(plan, bindings=(replace(binding, condition=odd, members=binding.members[:1]),))
    [call] = [c for c in run_script(render_gcloud(one), tmp_path, False) if c[0] == "projects"]
    assert _flag(call, "--condition") == (
        f'^;^expression=resource.name.startsWith("a,b");title={odd.title};'
        f"description=mlplane: {', '.join(binding.actions)}"
    )
