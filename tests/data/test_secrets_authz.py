"""Every call is authorized for the acting principal exactly as the operational model says:
the team and the experimentation identity read, list and write every secret; training and
serving identities may read only the graph credential, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplane.data.secrets import Secrets, SecretValue, open_secrets
from mlplane.data.secrets.local import LocalSecretStore
from mlplane.errors import PermissionDenied
from mlplane.iam.loading import load_project
from tests.harness import Team
from tests.teams import ALICE, team_fixture, wipe

ORDINARY = "openai-api-key"
PRINCIPALS = ["alice@acme.com", "experimentation", "training", "training-adhoc", "serving-runtime"]
FULL = {"alice@acme.com", "experimentation"}

team = team_fixture()


def graph_secret(project_file: Path) -> str:
    project = load_project(project_file).project
    return project.resolve(project.resources.secrets["graph"])


def expected(who: str, op: str, secret: str, graph: str) -> bool:
    if who in FULL:
        return True
    return op == "get" and secret == graph  # training/serving: the graph credential only


@pytest.fixture
def seeded(project_file: Path) -> tuple[Path, str]:
    graph = graph_secret(project_file)
    assert graph == "graph-readonly"
    team = open_secrets(project_file, "alice@acme.com", "local")
    team.set(ORDINARY, SecretValue(b"sk-ordinary"))
    team.set(graph, SecretValue(b"neo4j-password"))
    return project_file, graph


def versions(project_file: Path, name: str) -> list[int]:
    store = LocalSecretStore.for_project(project_file)
    return [v.version for i in store.list_secrets() if i.name == name for v in i.versions]


@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("op", ["list", "get", "set"])
@pytest.mark.parametrize("which", ["ordinary", "graph"])
def test_matrix(seeded: tuple[Path, str], who: str, op: str, which: str) -> None:
    project_file, graph = seeded
    secret = graph if which == "graph" else ORDINARY
    secrets = open_secrets(project_file, who, "local")
    before = versions(project_file, secret)

    def call() -> object:
        if op == "list":
            return [i.name for i in secrets.list()]
        if op == "get":
            return secrets.get(secret).reveal()
        return secrets.set(secret, SecretValue(b"new-value")).version

    if expected(who, op, secret, graph):
        result = call()
        if op == "list":
            assert result == sorted([ORDINARY, graph])
        elif op == "get":
            assert result == (b"neo4j-password" if secret == graph else b"sk-ordinary")
        else:
            assert result == before[-1] + 1
    else:
        with pytest.raises(PermissionDenied) as err:
            call()
        message = str(err.value)
        assert "secretmanager." in message
        assert versions(project_file, secret) == before  # nothing written


def test_a_denial_names_the_missing_permission(seeded: tuple[Path, str]) -> None:
    project_file, _ = seeded
    secrets = open_secrets(project_file, "training", "local")
    with pytest.raises(PermissionDenied, match=r"secretmanager.versions.access"):
        secrets.get(ORDINARY)
    with pytest.raises(PermissionDenied, match=r"secretmanager.secrets.list"):
        secrets.list()


def test_creating_a_secret_needs_create_as_well_as_add(seeded: tuple[Path, str]) -> None:
    """A new secret takes secretmanager.secrets.create; a denied add never reaches create."""
    project_file, _ = seeded
    calls: list[str] = []

    class Recording(LocalSecretStore):
        def create(self, name: str) -> None:
            calls.append(name)
            super().create(name)

    store = Recording.for_project(project_file)
    team = Secrets(open_secrets(project_file, "alice@acme.com", store).caller, store)
    assert team.set("brand-new", SecretValue(b"v")).version == 1
    assert calls == ["brand-new"]
    denied = open_secrets(project_file, "serving-runtime", store)
    with pytest.raises(PermissionDenied, match=r"secretmanager.versions.add"):
        denied.set("another", SecretValue(b"v"))
    assert calls == ["brand-new"]
    assert not (store.root / "another").exists()


def test_the_default_principal_is_the_signed_in_user(team: Team) -> None:
    """Without an explicit principal, secrets are read as whoever the credentials belong to:
    the signed-in user; MLPLANE_PRINCIPAL, which named one in earlier versions, is ignored."""
    project_file = wipe(team.project_file)
    graph = graph_secret(project_file)
    seed = open_secrets(project_file, ALICE, "local")
    seed.set(ORDINARY, SecretValue(b"sk-ordinary"))
    seed.set(graph, SecretValue(b"neo4j-password"))
    with team.environment(MLPLANE_PRINCIPAL="training", MLPLANE_USER="training"):
        secrets = open_secrets(project_file)
        assert str(secrets.principal) == f"user:{ALICE}"
        assert secrets.get(ORDINARY).reveal() == b"sk-ordinary"


def test_a_service_account_token_reads_as_that_account(team: Team) -> None:
    """A process holding training's token reads the graph credential, and nothing else."""
    project_file = wipe(team.project_file)
    graph = graph_secret(project_file)
    seed = open_secrets(project_file, ALICE, "local")
    seed.set(ORDINARY, SecretValue(b"sk-ordinary"))
    seed.set(graph, SecretValue(b"neo4j-password"))
    with team.acting("training"):
        secrets = open_secrets(project_file)
        assert secrets.principal.email == "mlplane-training@acme-ml.iam.gserviceaccount.com"
        assert secrets.get(graph).reveal() == b"neo4j-password"
        with pytest.raises(PermissionDenied, match=r"secretmanager.versions.access"):
            secrets.get(ORDINARY)
