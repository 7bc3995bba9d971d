"""The IamPlan as a bash script of gcloud commands that runs to the end and is safe to re-run.

Each kind is read once (accounts, roles, each target's policy) and only what is missing or
different is changed, so a second run sends no mutating request:
- service accounts are created when absent (an existing account is left as it is);
- custom roles carry a tag of their content in the description (`[mlplane:HASH]`): an absent
  role is created, a soft-deleted one undeleted, one whose tag differs updated;
- a binding is added when its (role, member, condition title) is not in the target's policy.
Every value is quoted with shlex.quote. Bindings retry: a new account takes a moment to be usable.
`render_gcloud` is the IAM-only script (`mlplane iam export`): it first checks that the
resources its bindings are scoped to exist, and names those that do not.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterable

from mlplane.iam.export.common import HEADER, condition_description
from mlplane.iam.synthesis import Binding, CustomRole, IamPlan, Scope

q = shlex.quote

PRELUDE = """\
#!/usr/bin/env bash
# {header}
# Project: {project}. Needs: bash, gcloud, authenticated as a principal that may manage IAM{needs}.
set -euo pipefail
export CLOUDSDK_CORE_DISABLE_PROMPTS=1

PROJECT={project_q}

# Retry a command: IAM changes (a new service account, a new role) take a moment to propagate.
retry() {{
  local attempt
  for attempt in 1 2 3 4; do
    if "$@"; then return 0; fi
    echo "retrying in $((attempt * 3))s: $*" >&2
    sleep $((attempt * 3))
  done
  "$@"
}}

# have LINE TEXT: TEXT has LINE as a whole line.
have() {{ printf '%s\\n' "$2" | grep -Fxq -- "$1"; }}

# role ID TAG FLAGS...: create, undelete or update a custom role so that it carries TAG.
role() {{
  local id=$1 tag=$2 line deleted
  shift 2
  line=$(printf '%s\\n' "$ROLES" | awk -F'\\t' -v id="$id" '$1 == id')
  if [ -z "$line" ]; then
    gcloud iam roles create "$id" --project "$PROJECT" "$@" --format=none
    return
  fi
  deleted=$(printf '%s\\n' "$line" | cut -f2)
  if [ "$deleted" = "True" ]; then
    gcloud iam roles undelete "$id" --project "$PROJECT" --format=none
  fi
  case "$line" in
    *"[mlplane:$tag]"*) ;;
    *) gcloud iam roles update "$id" --project "$PROJECT" "$@" --format=none ;;
  esac
}}

# grant GROUP TARGET WANT [FLAGS...]: add the bindings WANT (a JSON list) that are missing from
# the IAM policy of `gcloud GROUP get-iam-policy TARGET FLAGS`, in one set-iam-policy (with the
# policy's etag; re-read on a conflict). Nothing is written when nothing is missing.
grant() {{
  local group=$1 target=$2 want=$3 attempt rc
  shift 3
  for attempt in 1 2 3 4 5; do
    # shellcheck disable=SC2086
    gcloud $group get-iam-policy "$target" "$@" --format=json > "$WORK/policy.json"
    rc=0
    "$PY" -c "$MERGE" "$WORK/policy.json" "$want" || rc=$?
    [ "$rc" = 3 ] && return 0
    [ "$rc" = 0 ] || return "$rc"
    # shellcheck disable=SC2086
    if gcloud $group set-iam-policy "$target" "$WORK/policy.json" "$@" --format=none; then
      return 0
    fi
    echo "retrying in $((attempt * 3))s: set-iam-policy $target" >&2
    sleep $((attempt * 3))
  done
  return 1
}}
MERGE='
import json, sys
path, want = sys.argv[1], json.loads(sys.argv[2])
with open(path) as f:
    policy = json.load(f)
bindings = policy.setdefault("bindings", [])
def key(b):
    return (b["role"], json.dumps(b.get("condition"), sort_keys=True))
index = {{key(b): b for b in bindings}}
changed = False
for w in want:
    b = index.get(key(w))
    if b is None:
        b = index[key(w)] = dict(w, members=[])
        bindings.append(b)
    for m in w["members"]:
        if m not in b["members"]:
            b["members"].append(m)
            changed = True
if any("condition" in b for b in bindings):
    policy["version"] = 3
with open(path, "w") as f:
    json.dump(policy, f)
sys.exit(0 if changed else 3)
'
# gcloud runs on Python: the policy merge uses gcloud's own interpreter.
PY=$(gcloud info --format='value(basic.python_location)')
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"""


def prelude(project: str, needs: str = "") -> str:
    return PRELUDE.format(header=HEADER, project=project, project_q=q(project), needs=needs)


def role_tag(role: CustomRole) -> str:
    text = "\n".join((role.title, role.description, "GA", *sorted(role.permissions)))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def role_description(role: CustomRole) -> str:
    """The description with the content tag; Google allows 256 characters."""
    tag = f" [mlplane:{role_tag(role)}]"
    return role.description[: 256 - len(tag)] + tag


def condition_flag(binding: Binding) -> str:
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


def accounts_section(plan: IamPlan) -> list[str]:
    out = [
        "\n# --- service accounts (created when absent)",
        'ACCOUNTS=$(gcloud iam service-accounts list --project "$PROJECT" '
        "--format='value(email)')",
    ]
    for sa in plan.service_accounts:
        flags = f"--display-name={q(sa.display_name)} --description={q(sa.description)}"
        out.append(
            f'have {q(sa.email)} "$ACCOUNTS" || gcloud iam service-accounts create '
            f'{q(sa.account_id)} --project "$PROJECT" \\\n  {flags} --format=none'
        )
    return out


def roles_section(plan: IamPlan) -> list[str]:
    out = [
        "\n# --- custom roles (created, undeleted, or updated when their content tag differs)",
        'ROLES=$(gcloud iam roles list --project "$PROJECT" --show-deleted '
        "--format='value(name.basename(),deleted,description)')",
    ]
    for role in plan.roles:
        out.append(
            f"role {q(role.role_id)} {role_tag(role)} --title={q(role.title)} \\\n"
            f"  --description={q(role_description(role))} --stage=GA \\\n"
            f"  --permissions={q(','.join(sorted(role.permissions)))}"
        )
    return out


def _target(scope: Scope) -> tuple[str, str, str]:
    """(gcloud command group, target, extra flags) of a binding's scope."""
    project = '--project "$PROJECT"'
    if scope.kind == "project":
        return "projects", '"$PROJECT"', ""
    return {
        "bucket": ("'storage buckets'", q("gs://" + scope.name), ""),
        "secret": ("secrets", q(scope.name), project),
        "repository": (
            "'artifacts repositories'",
            q(scope.name),
            f"--location={q(scope.location)} {project}",
        ),
        "endpointsService": ("'endpoints services'", q(scope.name), ""),
        "serviceAccount": ("'iam service-accounts'", q(scope.name), project),
    }[scope.kind]


def _binding_json(binding: Binding, members: list[str]) -> dict[str, object]:
    out: dict[str, object] = {"role": binding.role.name, "members": members}
    if binding.condition is not None:
        out["condition"] = {
            "title": binding.condition.title,
            "description": condition_description(binding),
            "expression": binding.condition.expression,
        }
    return out


def _added_one_by_one(target: str, bindings: list[Binding]) -> list[str]:
    """`add-iam-policy-binding` for each (role, member) missing from the service's policy."""
    out = [
        f"HAVE=$(gcloud endpoints services get-iam-policy {target} "
        "--flatten='bindings[].members' --format='value(bindings.role,bindings.members)')"
    ]
    for b in bindings:
        for member in b.members:
            out.append(
                f'have {q(b.role.name + chr(9) + member)} "$HAVE" || retry gcloud endpoints '
                f"services add-iam-policy-binding {target} \\\n  --member={q(member)} "
                f"--role={q(b.role.name)} --format=none"
            )
    return out


def bindings_section(plan: IamPlan) -> list[str]:
    out = ["\n# --- bindings (per target: one read, one write of what is missing)"]
    by_target: dict[Scope, list[Binding]] = {}
    for b in plan.bindings:
        by_target.setdefault(b.scope, []).append(b)
    for scope, bindings in by_target.items():
        group, target, flags = _target(scope)
        if scope.kind == "endpointsService":  # it has no set-iam-policy in gcloud's GA track
            out += _added_one_by_one(target, bindings)
            continue
        want = [_binding_json(b, list(b.members)) for b in bindings]
        text = json.dumps(want, separators=(",", ":"))
        out.append(f"grant {group} {target} {q(text)} {flags}".rstrip())
    return out


def _prerequisite_checks(plan: IamPlan) -> list[str]:
    scopes = list(dict.fromkeys(b.scope for b in plan.bindings))
    out = [
        "\n# --- what the bindings are scoped to must exist (`mlplane export` creates it all)",
        "MISSING=()",
    ]
    for scope in scopes:
        if scope.kind in ("project", "serviceAccount"):
            continue
        group, target, flags = _target(scope)
        out.append(
            f"gcloud {group.strip(chr(39))} describe {target} {flags} --format=none "
            f">/dev/null 2>&1 || MISSING+=({q(str(scope))})".replace("  ", " ")
        )
    out.append(
        "if [ ${#MISSING[@]} -gt 0 ]; then\n"
        '  echo "error: these do not exist in $PROJECT: ${MISSING[*]}; create them first '
        '(mlplane export creates them with everything else)" >&2\n'
        "  exit 1\nfi"
    )
    return out


def render_gcloud(plan: IamPlan) -> str:
    """The IAM-only script of `mlplane iam export --format gcloud`."""
    sections: Iterable[list[str]] = (
        [prelude(plan.project)],
        _prerequisite_checks(plan),
        accounts_section(plan),
        roles_section(plan),
        bindings_section(plan),
    )
    return "\n".join(line for section in sections for line in section) + "\n"
