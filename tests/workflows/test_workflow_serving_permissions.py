"""The engine's declared permissions for the serving lifecycle and the operational model agree:
the serving service account holds every permission the deploy and undeploy pipelines need, and
nobody else does."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplane.iam.authorizer import Authorizer
from mlplane.iam.compiled import policy_for
from mlplane.model.compute import RevisionSettings, Verb, frontend, revision_bundle
from mlplane.model.compute_base import ResourceSpec


def lifecycle(authz: Authorizer) -> list[tuple[ResourceSpec, Verb]]:
    runtime = authz.policy.identities["serving-runtime"]
    bundle = revision_bundle(
        "sentiment", "r1", RevisionSettings(zone="us-central1-a", service_account=runtime)
    )
    front = frontend(endpoints_service="models.endpoints.acme-ml.cloud.goog")
    out: list[tuple[ResourceSpec, Verb]] = []
    for spec in bundle.resources:
        out += [(spec, Verb.GET), (spec, Verb.CREATE), (spec, Verb.DELETE)]
    for spec in front.resources:
        out += [(spec, Verb.GET), (spec, Verb.CREATE)]
    out += [(front.url_map, Verb.UPDATE)]
    if front.endpoints_config is not None:
        out += [(front.endpoints_config, Verb.UPDATE)]
    return out


@pytest.fixture
def authz(project_file: Path) -> Authorizer:
    return Authorizer(policy_for(project_file))


def test_the_serving_service_account_holds_every_lifecycle_permission(authz: Authorizer) -> None:
    serving = authz.principal("serving")
    for spec, verb in lifecycle(authz):
        for check in spec.permission_checks(verb, "acme-ml"):
            decision = authz.authorize(serving, check.permissions, check.resource)
            assert decision.allowed, f"{verb} {spec.KIND}: {decision.explain()}"


@pytest.mark.parametrize("who", ["alice@acme.com", "serving-runtime", "training", "cicd"])
def test_no_one_else_can_create_or_delete_the_stack(authz: Authorizer, who: str) -> None:
    principal = authz.principal(who)
    for spec, verb in lifecycle(authz):
        if verb is Verb.GET:
            continue
        denied = [
            c
            for c in spec.permission_checks(verb, "acme-ml")
            if not authz.authorize(principal, c.permissions, c.resource).allowed
        ]
        assert denied, f"{who} may {verb} {spec.KIND}"
