"""The IamPlan as a bash script of gcloud commands that is safe to re-run.

Service accounts and custom roles are created or updated in place; bindings are added with
`add-iam-policy-binding`, which is a no-op when the binding exists. Every value is quoted with
shlex.quote. Bindings retry a few times: a new service account takes a moment to be usable.
"""

from __future__ import annotations

import shlex

from mlplane.iam.export.common import HEADER, MemberBinding, condition_description, member_bindings
from mlplane.iam.synthesis import Binding, IamPlan

q = shlex.quote

_PRELUDE = """\
#!/usr/bin/env bash
# {header}
# Project: {project}. Needs: gcloud, authenticated as a principal that may manage IAM.
set -euo pipefail
export CLOUDSDK_CORE_DISABLE_PROMPTS=1

PROJECT={project_q}

# Retry a command: IAM changes (a new service account, a new role) take a moment to propagate.
retry() {{
  local attempt
  for attempt in 1 2 3 4 5; do
    if "$@"; then return 0; fi
    echo "retrying in $((attempt * 3))s: $*" >&2
    sleep $((attempt * 3))
  done
  "$@"
}}
"""


def _condition_flag(binding: Binding) -> str:
    """`--condition=expression=...,title=...,description=...`; gcloud splits on ',' unless a
    different delimiter is declared as `^D^` (gcloud topic escaping)."""
    if binding.condition is None:
        return "--condition=None"
    values = {
        "expression": binding.condition.expression,
        "title": binding.condition.title,
        "description": condition_description(binding),
    }
    text = "".join(values.values())
    delim = next(d for d in (",", ";", "|", "~", "#", "@") if d not in text)
    body = delim.join(f"{k}={v}" for k, v in values.items())
    return q(f"--condition={body}" if delim == "," else f"--condition=^{delim}^{body}")


def _binding_command(mb: MemberBinding) -> str:
    b = mb.binding
    scope = b.scope
    tail = f"--member={q(mb.member)} --role={q(b.role.name)}"
    if scope.kind == "project":
        return (
            f'retry gcloud projects add-iam-policy-binding "$PROJECT" \\\n'
            f"  {tail} {_condition_flag(b)} --format=none"
        )
    head = {
        "bucket": f"gcloud storage buckets add-iam-policy-binding {q('gs://' + scope.name)}",
        "secret": f'gcloud secrets add-iam-policy-binding {q(scope.name)} --project "$PROJECT"',
        "repository": (
            f"gcloud artifacts repositories add-iam-policy-binding {q(scope.name)} "
            f'--location={q(scope.location)} --project "$PROJECT"'
        ),
        "endpointsService": f"gcloud endpoints services add-iam-policy-binding {q(scope.name)}",
        "serviceAccount": (
            f"gcloud iam service-accounts add-iam-policy-binding {q(scope.name)} "
            '--project "$PROJECT"'
        ),
    }[scope.kind]
    if b.condition is not None:  # the model puts conditions on the project only, today
        tail += f" {_condition_flag(b)}"
    return f"retry {head} \\\n  {tail} --format=none"


def render_gcloud(plan: IamPlan) -> str:
    out = [_PRELUDE.format(header=HEADER, project=plan.project, project_q=q(plan.project))]
    out.append("# --- service accounts (create, or update the display name and description)")
    for sa in plan.service_accounts:
        flags = f"--display-name={q(sa.display_name)} --description={q(sa.description)}"
        out.append(
            f'if gcloud iam service-accounts describe {q(sa.email)} --project "$PROJECT" '
            ">/dev/null 2>&1; then\n"
            f'  gcloud iam service-accounts update {q(sa.email)} --project "$PROJECT" \\\n'
            f"    {flags} --format=none\n"
            "else\n"
            f'  gcloud iam service-accounts create {q(sa.account_id)} --project "$PROJECT" \\\n'
            f"    {flags} --format=none\n"
            "fi"
        )
    out.append("\n# --- custom roles (create, or update them to exactly these permissions)")
    for role in plan.roles:
        flags = (
            f"--title={q(role.title)} --description={q(role.description)} --stage=GA \\\n"
            f"    --permissions={q(','.join(sorted(role.permissions)))} --format=none"
        )
        out.append(
            f'gcloud iam roles create {q(role.role_id)} --project "$PROJECT" \\\n    {flags} \\\n'
            f'  || gcloud iam roles update {q(role.role_id)} --project "$PROJECT" \\\n    {flags}'
        )
    out.append("\n# --- bindings (one per role and member; adding an existing one is a no-op)")
    out += [_binding_command(mb) for mb in member_bindings(plan)]
    return "\n".join(out) + "\n"
