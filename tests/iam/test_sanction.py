"""A denial names the sanctioned path in one sentence that does not contradict itself: a
service account denied an action that users and another account perform is told both, and
never that the action is "not performed by a service account"."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplane.iam.authorizer import Authorizer
from mlplane.iam.compiled import policy_for
from mlplane.model.refs import ResourceRef
from mlplane.workflows.project_file import write_project_file

TRAINING_ADHOC = "serviceAccount:mlplane-training-adhoc@acme-ml.iam.gserviceaccount.com"
EXPERIMENTATION = "mlplane-experimentation@acme-ml.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def authz(tmp_path_factory: pytest.TempPathFactory) -> Authorizer:
    project_file = Path(tmp_path_factory.mktemp("p")) / "mlplane.toml"
    write_project_file(project_file, project_id="acme-ml", members=["user:alice@acme.com"])
    return Authorizer(policy_for(project_file))


def explain(authz: Authorizer, who: str, permission: str, ref: ResourceRef) -> str:
    decision = authz.authorize(authz.principal(who), permission, ref)
    assert not decision.allowed
    return decision.explain()


def test_a_service_account_is_told_who_performs_it_and_that_it_does_not(
    authz: Authorizer,
) -> None:
    text = explain(
        authz,
        TRAINING_ADHOC,
        "secretmanager.versions.access",
        ResourceRef("secret", "openai", "acme-ml"),
    )
    assert (
        "'experimentation.read-secrets' (read secrets) is performed by the users of process "
        f"'experimentation' and by the service account {EXPERIMENTATION}, not by "
        f"{TRAINING_ADHOC}"
    ) in text
    assert "not by a service account" not in text


def test_a_user_outside_the_team_is_told_how_to_be_added(authz: Authorizer) -> None:
    text = explain(
        authz,
        "user:mallory@acme.com",
        "secretmanager.versions.access",
        ResourceRef("secret", "openai", "acme-ml"),
    )
    assert "an admin adds you under [members] experimentation" in text
    assert f"is also performed by the service account {EXPERIMENTATION}" in text
    assert "\n" not in text
