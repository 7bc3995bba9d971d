"""Who may run a CI trigger: Cloud Build has no per-trigger IAM, so the model's "invoke"
action of the trigger's process decides (the client checks it before sending, the agent when
it runs the trigger); a push trigger has no such action."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplane.iam.authorizer import Authorizer
from mlplane.iam.compiled import policy_for
from mlplane.workflows.project_file import write_project_file


@pytest.fixture(scope="module")
def authz(tmp_path_factory: pytest.TempPathFactory) -> Authorizer:
    project_file = Path(tmp_path_factory.mktemp("p")) / "mlplane.toml"
    write_project_file(project_file, project_id="acme-ml", members=["user:alice@acme.com"])
    return Authorizer(policy_for(project_file))


@pytest.mark.parametrize("trigger", ["deploy", "undeploy", "train"])
def test_team_members_may_invoke_manual_triggers_and_outsiders_may_not(
    authz: Authorizer, trigger: str
) -> None:
    member = authz.may_invoke(authz.principal("user:alice@acme.com"), trigger)
    outsider = authz.may_invoke(authz.principal("user:mallory@acme.com"), trigger)
    assert member is not None and member.allowed
    assert outsider is not None and not outsider.allowed


def test_a_push_trigger_names_no_invoke_action(authz: Authorizer) -> None:
    assert authz.may_invoke(authz.principal("user:alice@acme.com"), "build-images") is None
