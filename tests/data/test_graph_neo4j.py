"""The Neo4j backend at the official driver's boundary (`neo4j`): `GraphDatabase.driver` is
replaced by a fake that records how it was called and answers with the driver's own result
types (`EagerResult`, `Record`, `Node`) and exceptions. No Neo4j server runs here; this checks
what we send (URI, credential from the graph secret, READ routing, database, parameters) and how
we read what comes back, not Cypher semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

neo4j = pytest.importorskip("neo4j", reason="the neo4j driver is not installed")

from neo4j import exceptions as nexc  # noqa: E402
from neo4j.graph import Graph as DriverGraph  # noqa: E402
from neo4j.graph import Node  # noqa: E402

from mlplane.data.graph import Graph, NotFound, ParameterError, QueryError  # noqa: E402
from mlplane.data.graph.neo4j import Neo4jCredential, Neo4jGraph  # noqa: E402
from mlplane.data.secrets import SecretValue, open_secrets  # noqa: E402
from mlplane.errors import ConfigError, PermissionDenied, TransientError  # noqa: E402

CYPHER = "MATCH (u:User)-[:FOLLOWS]->(v:User) WHERE u.id = $id RETURN v.id AS id, v"


class FakeDriver:
    def __init__(self, uri: str, auth: tuple[str, str]) -> None:
        self.uri = uri
        self.auth = auth
        self.calls: list[dict[str, Any]] = []
        self.error: Exception | None = None

    def execute_query(self, query: str, **kwargs: Any) -> Any:
        self.calls.append({"query": query, **kwargs})
        if self.error:
            raise self.error
        node = Node(DriverGraph(), "4:db:8", 8, {"User"}, {"id": 8, "name": "bob"})
        record = neo4j.Record({"id": 8, "v": node})
        return neo4j.EagerResult([record], None, ["id", "v"])  # type: ignore[arg-type]

    def close(self) -> None:
        pass


@pytest.fixture
def drivers(monkeypatch: pytest.MonkeyPatch) -> list[FakeDriver]:
    made: list[FakeDriver] = []

    def driver(uri: str, auth: tuple[str, str]) -> FakeDriver:
        made.append(FakeDriver(uri, auth))
        return made[-1]

    monkeypatch.setattr(neo4j.GraphDatabase, "driver", driver)
    return made


@pytest.fixture
def project(project_file: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("MLPLANE_PRINCIPAL", "MLPLANE_USER", "GCE_METADATA_HOST"):
        monkeypatch.delenv(var, raising=False)
    with project_file.open("a") as f:
        f.write('\n[data]\ngraph = "neo4j"\nneo4j_uri = "neo4j://graph.internal:7687"\n')
    team = open_secrets(project_file, "alice@acme.com", "local")
    team.set("graph-readonly", SecretValue(b"reader:s3cret"))
    return project_file


def test_query_sends_a_read_with_the_secret_credential(
    project: Path, drivers: list[FakeDriver]
) -> None:
    graph = Graph.open(project, "serving-runtime")  # the project's [data] graph = "neo4j"
    assert isinstance(graph.backend, Neo4jGraph)
    assert drivers == []  # connects on first use
    rows = graph.query(CYPHER, {"id": 7})
    (driver,) = drivers
    assert driver.uri == "neo4j://graph.internal:7687"
    assert driver.auth == ("reader", "s3cret")
    (call,) = driver.calls
    assert call == {
        "query": CYPHER,
        "parameters_": {"id": 7},
        "database_": "neo4j",
        "routing_": neo4j.RoutingControl.READ,
    }
    assert rows.columns == ("id", "v")
    assert rows.rows == ((8, {"id": 8, "name": "bob", "_label": "User"}),)


def test_json_credential_names_the_database(project: Path, drivers: list[FakeDriver]) -> None:
    team = open_secrets(project, "alice@acme.com", "local")
    team.set("graph-readonly", SecretValue(b'{"username": "r", "password": "p", "database": "g"}'))
    Graph.open(project, "training").query("RETURN 1")
    assert drivers[0].auth == ("r", "p")
    assert drivers[0].calls[0]["database_"] == "g"


def test_denied_principals_never_reach_the_secret_or_the_driver(
    project: Path, drivers: list[FakeDriver]
) -> None:
    with pytest.raises(PermissionDenied, match=r"secretmanager\.versions\.access"):
        Graph.open(project, "cicd").query(CYPHER, {"id": 7})
    assert drivers == []


def test_parameters_that_do_not_bind_never_reach_the_driver(
    project: Path, drivers: list[FakeDriver]
) -> None:
    graph = Graph.open(project, "training")
    with pytest.raises(ParameterError, match=r"neo4j: params: the query uses \$id"):
        graph.query(CYPHER)
    assert all(not d.calls for d in drivers)


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (
            nexc.Neo4jError._hydrate_neo4j(
                code="Neo.ClientError.Database.DatabaseNotFound",
                message="Database does not exist. Database name: 'neo4j'.",
            ),
            NotFound,
            "neo4j: database 'neo4j' not found",
        ),
        (
            nexc.Neo4jError._hydrate_neo4j(
                code="Neo.ClientError.Statement.SyntaxError", message="Invalid input 'MATC'"
            ),
            QueryError,
            "Neo.ClientError.Statement.SyntaxError: Invalid input 'MATC'",
        ),
        (nexc.AuthError("bad credentials"), PermissionDenied, "denied by Neo4j"),
        (nexc.ServiceUnavailable("no route"), TransientError, "no route"),
    ],
)
def test_driver_errors_become_mlplane_errors(
    project: Path, drivers: list[FakeDriver], error: Exception, kind: type, text: str
) -> None:
    graph = Graph.open(project, "training")
    assert isinstance(graph.backend, Neo4jGraph)
    graph.backend.driver.error = error
    with pytest.raises(kind) as info:
        graph.query("MATCH (n) RETURN n")
    assert text in str(info.value)


def test_a_malformed_credential_is_named_without_its_value(
    project: Path, drivers: list[FakeDriver]
) -> None:
    open_secrets(project, "alice@acme.com", "local").set(
        "graph-readonly", SecretValue(b"no-separator-s3cret")
    )
    with pytest.raises(ConfigError, match="secret graph-readonly") as info:
        Graph.open(project, "training").query("RETURN 1")
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in repr(Neo4jCredential("u", "s3cret"))


def test_closing_the_graph_closes_the_driver(project: Path, drivers: list[FakeDriver]) -> None:
    closed: list[bool] = []
    with Graph.open(project, "training") as graph:
        graph.query("RETURN 1")
        drivers[0].close = lambda: closed.append(True)  # type: ignore[method-assign]
    assert closed == [True]
    graph.close()  # idempotent
    assert closed == [True]
