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

ORDINARY = "openai-api-key"
PRINCIPALS = ["alice@acme.com", "experimentation", "training", "training-adhoc", "serving-runtime"]
FULL = {"alice@acme.com", "experimentation"}


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


def test_the_default_principal_is_the_team_user(
    seeded: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project_file, _ = seeded
    for var in ("GCE_METADATA_HOST", "MLPLANE_PRINCIPAL", "MLPLANE_USER"):
        monkeypatch.delenv(var, raising=False)
    secrets = open_secrets(project_file)
    assert secrets.principal.email == "alice@acme.com"
    assert secrets.get(ORDINARY).reveal() == b"sk-ordinary"
    monkeypatch.setenv("MLPLANE_PRINCIPAL", "training")
    with pytest.raises(PermissionDenied):
        open_secrets(project_file).get(ORDINARY)
