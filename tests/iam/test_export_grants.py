"""What the exports grant, read back from the exported text (Terraform JSON and the gcloud
script), not from the plan: no member holds an instance-level permission on every VM; every
identity that runs a CI trigger can write the build's logs; every Spanner reader can get
sessions. Conditions are evaluated by mlplane's CEL evaluator on full resource names, as the
local authorizer evaluates them."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlplane.iam.audit.terraform_policy import policy_set_from_terraform
from mlplane.iam.conditions import holds
from mlplane.iam.export.foundation import build_foundation
from mlplane.iam.export.gcloud_foundation import render_foundation_gcloud
from mlplane.iam.export.terraform_foundation import foundation_document
from mlplane.iam.loading import LoadedProject, load_project
from mlplane.iam.synthesis import synthesize

# (member, scope "project" or KIND:NAME, permissions, condition expression or "")
Grant = tuple[str, str, frozenset[str], str]
PROBES = ("nb-alice-1", "train-run-1", "srv-sentiment-r1-abcd", "aux-neo4j", "web-1")
OWNER = {"srv-": "mlplane-serving@", "aux-": "mlplane-cicd@"}


def from_terraform(loaded: LoadedProject) -> Iterator[Grant]:
    plan = synthesize(loaded)
    doc = foundation_document(build_foundation(loaded, plan))
    policies = policy_set_from_terraform(doc, plan.project)
    roles = {r.name: r.permissions for r in policies.roles}
    for policy in policies.policies:
        scope = "project" if policy.scope.kind == "project" else str(policy.scope)
        for b in policy.bindings:
            cond = b.condition.expression if b.condition else ""
            for m in b.members:
                yield m, scope, frozenset(roles[b.role]), cond


def from_gcloud(loaded: LoadedProject) -> Iterator[Grant]:
    plan = synthesize(loaded)
    script = render_foundation_gcloud(build_foundation(loaded, plan)).replace("\\\n", " ")
    roles: dict[str, frozenset[str]] = {}
    for line in script.splitlines():
        words = shlex.split(line) if line.startswith(("role ", "grant ")) else []
        if words[:1] == ["role"]:
            perms = next(w for w in words if w.startswith("--permissions="))
            name = f"projects/{plan.project}/roles/{words[1]}"
            roles[name] = frozenset(perms.partition("=")[2].split(","))
        elif words[:1] == ["grant"]:
            group, target = words[1], words[2]
            scope = "project" if group == "projects" else f"{group}:{target}"
            for b in json.loads(words[3]):
                cond = (b.get("condition") or {}).get("expression", "")
                for m in b["members"]:
                    yield m, scope, roles[b["role"]], cond
        elif "endpoints services add-iam-policy-binding" in line:
            words = shlex.split(line.split("||", 1)[1].replace("retry ", "", 1))
            flag = {w.split("=", 1)[0]: w.split("=", 1)[1] for w in words if w.startswith("--")}
            yield flag["--member"], f"endpointsService:{words[4]}", roles[flag["--role"]], ""


@pytest.fixture(params=["terraform", "gcloud"])
def grants(request: pytest.FixtureRequest, project_file: Path) -> list[Grant]:
    loaded = load_project(project_file)
    reader = from_terraform if request.param == "terraform" else from_gcloud
    out = list(reader(loaded))
    assert len(out) > 40
    return out


def instance_level(permission: str) -> bool:
    """Permissions checked on one VM that change it (reads and list are evaluated elsewhere)."""
    service, _, rest = permission.partition(".")
    collection, _, verb = rest.partition(".")
    return (service, collection) == ("compute", "instances") and not verb.startswith(
        ("get", "list")
    )


def test_no_member_holds_an_instance_permission_on_every_vm(grants: list[Grant]) -> None:
    admitted: dict[tuple[str, str], set[str]] = {}
    for member, scope, perms, cond in grants:
        for perm in filter(instance_level, perms):
            assert scope == "project", (member, perm, scope)
            names = {n for n in PROBES if not cond or holds(cond, "instance", n, "acme-ml")}
            admitted.setdefault((member, perm), set()).update(names)
    assert admitted, "no instance-level permission at all?"
    for (member, perm), names in admitted.items():
        assert "web-1" not in names, f"{member} holds {perm} on any VM"
        for prefix, owner in OWNER.items():
            on = any(n.startswith(prefix) for n in names)
            assert not on or owner in member, f"{member} holds {perm} on {prefix}* VMs"
        if member.startswith(("user:", "group:")):
            assert names <= {"nb-alice-1", "train-run-1"}, (member, perm, names)


def test_each_trigger_identity_can_write_logs(grants: list[Grant], project_file: Path) -> None:
    model = load_project(project_file).model
    for trigger in model.triggers:
        email = f"serviceAccount:mlplane-{trigger.runs_as}@acme-ml.iam.gserviceaccount.com"
        assert any(
            m == email and s == "project" and not c and "logging.logEntries.create" in p
            for m, s, p, c in grants
        ), trigger.name


def test_each_spanner_reader_can_get_sessions(grants: list[Grant]) -> None:
    readers = {(m, s) for m, s, p, c in grants if "spanner.databases.read" in p}
    assert readers
    for member, scope in readers:
        assert any(
            m == member and s == scope and "spanner.sessions.get" in p for m, s, p, _ in grants
        ), member
