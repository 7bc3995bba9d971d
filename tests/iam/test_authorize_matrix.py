"""authorize() allows exactly where the model says so, for every principal and every action.

The expectation is computed from the model's own words (who, members, identities), independently
of synthesis and the compiled policy: a principal may perform an action when every (permission,
scope) the action needs is needed by some action the model gives that principal.
"""

from __future__ import annotations

import pytest

from mlplane.iam.authorizer import Authorizer
from mlplane.iam.compiled import policy_for
from mlplane.iam.loading import LoadedProject, load_project
from mlplane.model.operational import Action
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

USERS = ["user:alice@acme.com", "user:bob@acme.com", "user:mallory@evil.example"]


def grants_of(action: Action) -> set[tuple[str, str, str]]:
    return {
        (p, g.scope, g.condition.name_prefix if g.condition else "")
        for g in action.grants
        for p in g.permissions
    }


def expected_actions(loaded: LoadedProject, principal: str) -> set[str]:
    model = loaded.model
    if principal.startswith("serviceAccount:"):
        ident_id = principal.split(":")[1].split("@")[0].removeprefix("mlplane-")
        ident = model.identity(ident_id)
        assert ident is not None
        held = list(model.identity_actions(ident)) + list(model.build_actions(ident))
    else:
        # alice directly, bob through the group; mallory is not on the team.
        on_team = principal in ("user:alice@acme.com", "user:bob@acme.com")
        held = [a for a in model.actions if a.user_side and on_team]
    have: set[tuple[str, str, str]] = set()
    for a in held:
        have |= grants_of(a)
    covered = {(p, s) for p, s, c in have if not c}
    out = set()
    for a in model.actions:
        if all((p, s) in covered or (p, s, c) in have for p, s, c in grants_of(a)):
            out.add(a.id)
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedProject, Authorizer]:
    from tests.conftest import PROJECT_TOML

    path = tmp_path_factory.mktemp("m") / "mlplane.toml"
    path.write_text(PROJECT_TOML)
    return load_project(path), Authorizer(policy_for(path))


def all_principals(authz: Authorizer) -> list[str]:
    return USERS + [f"serviceAccount:{e}" for e in authz.policy.identities.values()]


def test_matrix_allows_exactly_where_the_model_says(
    setup: tuple[LoadedProject, Authorizer],
) -> None:
    loaded, authz = setup
    checked = 0
    for member in all_principals(authz):
        expected = expected_actions(loaded, member)
        principal = Principal.parse(member)
        for action in loaded.model.actions:
            # Conditional grants are checked on a resource the condition admits.
            cond = next((g.condition for g in action.grants if g.condition), None)
            ref = ResourceRef("instance", f"{cond.name_prefix}x", "acme-ml") if cond else None
            decision = authz.authorize(principal, action.id, ref)
            assert decision.allowed == (action.id in expected), (
                member,
                action.id,
                decision.explain(),
            )
            checked += 1
    assert checked == len(all_principals(authz)) * len(loaded.model.actions) == 10 * 51


def test_the_documents_key_rules(setup: tuple[LoadedProject, Authorizer]) -> None:
    _, authz = setup
    P = authz.principal
    bucket = ResourceRef("bucket", "acme-ml-mlplane-artifacts", "acme-ml")
    # Only the CI trigger's identity persists training artifacts.
    assert authz.authorize(P("training"), "storage.objects.create", bucket).allowed
    for who in ("alice@acme.com", "bob@acme.com", "training-adhoc", "experimentation", "serving"):
        d = authz.authorize(P(who), "storage.objects.create", bucket)
        assert not d.allowed and d.sanctioned_path and "'train'" in d.sanctioned_path
    # Users do not touch the load balancer: that runs through the deploy trigger.
    d = authz.authorize(P("alice@acme.com"), "serving.update-url-maps")
    assert not d.allowed and "'deploy'" in (d.sanctioned_path or "")
    # Serving VMs cannot rewrite the load balancer; the deployer can.
    assert not authz.authorize(P("serving-runtime"), "compute.urlMaps.update").allowed
    assert authz.authorize(P("serving"), "compute.urlMaps.update").allowed
    # A training VM deletes training VMs only.
    inst = lambda n: ResourceRef("instance", n, "acme-ml")  # noqa: E731
    assert authz.authorize(P("training-adhoc"), "compute.instances.delete", inst("train-1")).allowed
    assert not authz.authorize(
        P("training-adhoc"), "compute.instances.delete", inst("nb-1")
    ).allowed
    # Another project's resources are not covered.
    other = ResourceRef("instance", "train-1", "other-proj")
    assert not authz.authorize(P("training-adhoc"), "compute.instances.delete", other).allowed


def test_impersonation_is_governed(setup: tuple[LoadedProject, Authorizer]) -> None:
    _, authz = setup
    alice = authz.principal("alice@acme.com")
    assert authz.may_act_as(alice, "experimentation").allowed
    assert authz.may_act_as(alice, "training-adhoc").allowed
    for ident in ("training", "serving", "serving-runtime", "cicd", "aux-runtime"):
        d = authz.may_act_as(alice, ident)
        assert not d.allowed and "not granted" in (d.sanctioned_path or "")
    assert authz.may_act_as(authz.principal("serving"), "serving-runtime").allowed
    for perm in ("iam.serviceAccounts.getAccessToken", "iam.serviceAccounts.signJwt"):
        ref = ResourceRef("serviceAccount", authz.policy.identities["training"], "acme-ml")
        assert not authz.authorize(alice, perm, ref).allowed


def test_denial_names_missing_permissions(setup: tuple[LoadedProject, Authorizer]) -> None:
    _, authz = setup
    d = authz.authorize(authz.principal("mallory@evil.example"), "experimentation.create-instances")
    assert not d.allowed
    assert "compute.instances.create" in d.missing
    assert "[members]" in (d.sanctioned_path or "")
    d = authz.authorize(authz.principal("alice@acme.com"), "bigquery.tables.delete")
    assert d.missing == ("bigquery.tables.delete",)
    assert "No action in the operational model" in (d.sanctioned_path or "")


def test_a_service_policy_covers_its_configs(setup: tuple[LoadedProject, Authorizer]) -> None:
    _, authz = setup
    name = "models.endpoints.acme-ml.cloud.goog"
    config = ResourceRef("endpointsConfig", name, "acme-ml")
    perm = "servicemanagement.services.update"
    assert authz.authorize(authz.principal("serving"), perm, config).allowed
    assert not authz.authorize(authz.principal("serving-runtime"), perm, config).allowed
    other = ResourceRef("endpointsConfig", "other.endpoints.acme-ml.cloud.goog", "acme-ml")
    assert not authz.authorize(authz.principal("serving"), perm, other).allowed
