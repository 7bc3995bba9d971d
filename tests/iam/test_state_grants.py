"""The team state's IAM (decision 1500): who reads and writes it, on exactly its bucket, and the
project file's [state] table."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplane.errors import ConfigError
from mlplane.iam.authorizer import Authorizer
from mlplane.iam.compile import compile_policy
from mlplane.iam.loading import load_project
from mlplane.iam.synthesis import synthesize
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

STATE = "acme-ml-mlplane-state"
ARTIFACTS = "acme-ml-mlplane-artifacts"
WRITE = ("storage.objects.create", "storage.objects.delete", "storage.objects.get")


def state_bindings(project_file: Path) -> dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]]:
    plan = synthesize(load_project(project_file))
    return {
        b.holder: (b.scope.name, b.role.permissions, b.actions)
        for b in plan.bindings
        if any("-state" in a for a in b.actions)
    }


def test_writers_and_readers_of_the_shipped_model(project_file: Path) -> None:
    assert state_bindings(project_file) == {
        "users:experimentation": (STATE, WRITE, ("experimentation.write-state",)),
        "users:training": (STATE, WRITE, ("training.write-state",)),
        "users:serving": (STATE, ("storage.objects.get",), ("serving.read-state",)),
        "identity:serving": (STATE, WRITE, ("serving.write-state",)),
    }


def authorizer(project_file: Path) -> Authorizer:
    loaded = load_project(project_file)
    return Authorizer(compile_policy(loaded, synthesize(loaded)))


def test_users_write_the_state_bucket_and_still_not_the_artifacts(project_file: Path) -> None:
    authz = authorizer(project_file)
    alice = Principal.parse("user:alice@acme.com")
    create = "storage.objects.create"
    assert authz.authorize(alice, create, ResourceRef("bucket", STATE, "acme-ml")).allowed
    denied = authz.authorize(alice, create, ResourceRef("bucket", ARTIFACTS, "acme-ml"))
    assert not denied.allowed and "mlplane ci trigger train" in denied.explain()
    runtime = authz.principal("serving-runtime")  # replicas never touch the state
    assert not authz.authorize(runtime, "storage.objects.get", ResourceRef("bucket", STATE)).allowed


def test_a_project_file_written_before_state_gets_the_default_bucket(project_file: Path) -> None:
    project_file.write_text(
        project_file.read_text() + '\n[resources.buckets]\nartifacts = "{project}-art"\n'
    )
    loaded = load_project(project_file)
    assert loaded.project.state_bucket == STATE
    assert loaded.project.resources.buckets["artifacts"] == "{project}-art"


def test_the_state_in_a_bucket_the_team_already_has(project_file: Path) -> None:
    project_file.write_text(
        project_file.read_text()
        + '\n[state]\nbucket = "tf"\nprefix = "ml/state/"\nlock_timeout = 30\n'
        + '\n[resources]\nexisting = ["bucket:tf"]\n[resources.buckets]\n'
        + 'artifacts = "{project}-mlplane-artifacts"\ntf = "acme-tfstate"\n'
    )
    loaded = load_project(project_file)
    state = loaded.project.state
    assert (loaded.project.state_bucket, state.prefix, state.lock_timeout) == (
        "acme-tfstate",
        "ml/state/",
        30.0,
    )
    assert "state" not in loaded.project.resources.buckets  # no second, unused bucket
    assert {s for s, _, _ in state_bindings(project_file).values()} == {"acme-tfstate"}


@pytest.mark.parametrize(
    ("extra", "where", "says"),
    [
        ('[state]\nbucket = "artifacts"\n', "state.bucket", "only the trigger(s) train write"),
        ('[state]\nbucket = "nope"\n', "", "state.bucket: 'nope' names no bucket"),
        ('[state]\nprefix = "/abs/"\n', "state.prefix", "not an object prefix"),
        ('[state]\nprefix = "no-slash"\n', "state.prefix", "not an object prefix"),
        ("[state]\nlock_timeout = -1\n", "state.lock_timeout", "greater than or equal to 0"),
        ('[state]\nowner = "me"\n', "state.owner", "unknown field"),
        (
            '[[actions]]\nid = "serving.write-state"\nprocess = "serving"\nwho = "user"\n'
            'requirement = "r"\nreason = "r"\n'
            'grants = [{ scope = "project", permissions = ["compute.instances.get"] }]\n',
            "actions[0].id",
            "an action mlplane derives",
        ),
    ],
)
def test_bad_state_settings_name_the_field(
    project_file: Path, extra: str, where: str, says: str
) -> None:
    project_file.write_text(project_file.read_text() + "\n" + extra)
    with pytest.raises(ConfigError) as info:
        load_project(project_file)
    assert info.value.location == where and says in info.value.message, str(info.value)
    assert "\n" not in str(info.value)
