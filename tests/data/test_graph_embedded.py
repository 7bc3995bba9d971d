"""The local graph store (embedded ladybug): real Cypher results with `$name` parameters, a
read-only database for reads, and errors naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ladybug", reason="the embedded graph needs ladybug (pip install ladybug)")

from mlplane.data.graph import Graph, NotFound, ParameterError, QueryError
from mlplane.data.graph.embedded import EmbeddedGraph
from mlplane.errors import PermissionDenied
from tests.conftest import PROJECT_TOML


@pytest.fixture
def graph(project_file: Path, monkeypatch: pytest.MonkeyPatch) -> Graph:
    for var in ("MLPLANE_PRINCIPAL", "MLPLANE_USER", "GCE_METADATA_HOST"):
        monkeypatch.delenv(var, raising=False)
    store = EmbeddedGraph.for_project(project_file)
    store.execute(
        "CREATE NODE TABLE User(id INT64, name STRING, PRIMARY KEY(id));"
        "CREATE REL TABLE Follows(FROM User TO User, since INT64);"
    )
    store.execute("CREATE (:User {id: 1, name: 'ada'}); CREATE (:User {id: 2, name: 'bob'});")
    store.execute(
        "MATCH (a:User), (b:User) WHERE a.id = $a AND b.id = $b "
        "CREATE (a)-[:Follows {since: 2024}]->(b)",
        {"a": 1, "b": 2},
    )
    return Graph.open(project_file, "training")


def test_query_returns_plain_values(graph: Graph, project_file: Path) -> None:
    assert isinstance(graph.backend, EmbeddedGraph)
    assert graph.backend.path == project_file.parent / ".mlplane" / "data" / "graph.lbdb"
    rows = graph.query(
        "MATCH (a:User)-[f:Follows]->(b:User) WHERE a.name = $name RETURN b.name, f.since, b",
        {"name": "ada"},
    )
    assert rows.columns == ("b.name", "f.since", "b")
    ((name, since, node),) = rows.rows
    assert (name, since) == ("bob", 2024)
    assert isinstance(node, dict)
    assert node["name"] == "bob" and node["_label"] == "User"


def test_a_read_cannot_write(graph: Graph) -> None:
    with pytest.raises(QueryError, match="read-only"):
        graph.query("CREATE (:User {id: 3, name: 'eve'})")
    assert graph.query("MATCH (u:User) RETURN count(u)").rows == ((2,),)


def test_parameters_that_do_not_bind(graph: Graph) -> None:
    # ladybug itself runs a query whose parameter is missing; the SDK refuses it by name
    with pytest.raises(ParameterError, match=r"uses \$name but no value"):
        graph.query("MATCH (u:User) WHERE u.name = $name RETURN u.id")
    with pytest.raises(ParameterError, match="given 'nmae'"):
        graph.query("MATCH (u:User) WHERE u.name = $name RETURN u.id", {"name": 1, "nmae": 2})


def test_unknown_label_and_bad_cypher(graph: Graph) -> None:
    with pytest.raises(NotFound, match="node or relationship table 'Item' not found"):
        graph.query("MATCH (i:Item) RETURN i")
    with pytest.raises(QueryError, match="Parser exception"):
        graph.query("MATC (u) RETURN u")


def test_a_missing_database_is_named_and_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLPLANE_PRINCIPAL", raising=False)
    project_file = tmp_path / "mlplane.toml"
    project_file.write_text(PROJECT_TOML)
    graph = Graph.open(project_file, "training")
    with pytest.raises(NotFound, match=r"graph database '.*graph.lbdb' not found"):
        graph.query("MATCH (u) RETURN u")
    assert not (tmp_path / ".mlplane" / "data" / "graph.lbdb").exists()


def test_denied_before_the_store_is_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLPLANE_PRINCIPAL", raising=False)
    project_file = tmp_path / "mlplane.toml"
    project_file.write_text(PROJECT_TOML)
    graph = Graph.open(project_file, "cicd")
    with pytest.raises(PermissionDenied, match=r"secretmanager\.versions\.access"):
        graph.query("MATCH (u) RETURN u")  # denied, not NotFound: nothing is revealed
