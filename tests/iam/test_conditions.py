"""IAM condition expressions: the authorizer evaluates the exported CEL text itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlplane.iam.conditions import compile_condition, holds, iam_resource
from mlplane.model.operational import Condition

SERVING = Condition(
    id="servingVms",
    title="Serving replicas only",
    resource_type="compute.googleapis.com/Instance",
    name_prefix="srv-",
    managed_by=("compute.googleapis.com/InstanceGroupManager",),
)


def test_instance_prefix_is_matched_on_the_name_not_the_path() -> None:
    expr = SERVING.expression
    assert holds(expr, "instance", "srv-sentiment-r1-abcd", "acme-ml")
    assert not holds(expr, "instance", "nb-alice-1", "acme-ml")
    assert not holds(expr, "instance", "x-srv-1", "acme-ml")
    # the group that creates the replicas is admitted; other kinds are not
    assert holds(expr, "instanceGroupManager", "sentiment-r1-mig", "acme-ml")
    assert not holds(expr, "instanceTemplate", "srv-x", "acme-ml")
    assert not holds(expr, "project", "acme-ml", "acme-ml")


def test_full_resource_names_as_google_evaluates_them() -> None:
    assert iam_resource("instance", "nb-1", "p") == (
        "compute.googleapis.com/Instance",
        "projects/p/zones/-/instances/nb-1",
        "compute.googleapis.com",
    )
    assert iam_resource("urlMap", "m", "p")[1] == "projects/p/global/urlMaps/m"
    assert iam_resource("backendService", "b", "p")[1] == "projects/p/global/backendServices/b"
    assert iam_resource("targetHttpProxy", "t", "p")[1] == "projects/p/global/targetHttpProxies/t"


@pytest.mark.parametrize(
    ("expression", "name", "expected"),
    [
        ('resource.name.startsWith("projects/p/zones/-/instances/a")', "ab", True),
        ('resource.name.endsWith("/b")', "ab", False),
        ('!(resource.name.extract("/instances/{n}") == "a")', "a", False),
        ('resource.name.extract("/zones/{z}/") == "-"', "a", True),
        ('resource.name.extract("/nothere/{z}") == ""', "a", True),
        ('resource.type != "x" && (resource.name == "y" || resource.service != "")', "a", True),
        ('resource.name.extract("/instances/{n}").startsWith("say \\"hi\\"")', "a", False),
    ],
)
def test_the_supported_subset(expression: str, name: str, expected: bool) -> None:
    assert holds(expression, "instance", name, "p") is expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ('request.time < timestamp("2030-01-01T00:00:00Z")', "unexpected '<"),
        ('request.time == "x"', "'request' is not supported"),
        ('resource.labels == "x"', "resource.labels is not supported"),
        ('resource.name.matches("a.*")', ".matches() is not supported"),
        ('resource.name.startsWith("a"', "ends early"),
        ('resource.name.extract("/x/")', "no {variable}"),
        ('resource.name == "a" "b"', "unexpected"),
    ],
)
def test_what_is_not_supported_is_refused(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        compile_condition(expression)


def test_the_authorizer_holds_the_exported_text(project_file: Path) -> None:
    """The compiled policy's condition for a role is byte for byte the expression both exports
    send to Google (Terraform `condition {}`, the gcloud script's policy JSON)."""
    import json
    import shlex

    from mlplane.iam.compiled import policy_for
    from mlplane.iam.export.gcloud import render_gcloud
    from mlplane.iam.export.terraform import terraform_document
    from mlplane.iam.loading import load_project
    from mlplane.iam.synthesis import synthesize

    plan = synthesize(load_project(project_file))
    compiled = {
        (g.role, member): g.condition
        for member, perms in policy_for(project_file).grants.items()
        for grants in perms.values()
        for g in grants
    }
    exported: dict[tuple[str, str], str] = {}
    for body in terraform_document(plan)["resource"]["google_project_iam_member"].values():
        if "condition" in body:
            role = body["role"].split(".", 1)[1].removesuffix(".name}")
            exported[(role, body["member"])] = body["condition"]["expression"]
    script_conditions = set()
    for line in render_gcloud(plan).splitlines():
        if line.startswith("grant projects "):
            for b in json.loads(shlex.split(line)[3]):
                if "condition" in b:
                    script_conditions.add(b["condition"]["expression"])
    assert exported and script_conditions == set(exported.values())
    tf_roles = {
        ref: body["role_id"]
        for ref, body in terraform_document(plan)["resource"][
            "google_project_iam_custom_role"
        ].items()
    }
    checked = 0
    for (ref, member), expression in exported.items():
        if not member.startswith("serviceAccount:${"):
            assert compiled[(tf_roles[ref], member)] == expression
            checked += 1
    assert checked >= 4  # alice and the group, on notebook and training VMs
