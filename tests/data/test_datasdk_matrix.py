"""Who may read which store, per the operational model: for a team user and each identity, the
warehouse (query, metadata), the OLTP store and the graph are allowed or denied exactly as the
model's actions grant the permissions each call needs. The expectation is computed from the
model's actions and grants (not from the authorizer under test, not by hand); allowed calls
return the seeded data from the local backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("duckdb", reason="the local warehouse needs duckdb (pip install duckdb)")
pytest.importorskip("ladybug", reason="the embedded graph needs ladybug (pip install ladybug)")

from mlplane.data.graph import Graph
from mlplane.data.graph.embedded import EmbeddedGraph
from mlplane.data.graph.service import ACCESS
from mlplane.data.oltp import Oltp
from mlplane.data.oltp.service import READ
from mlplane.data.oltp.sqlite import LocalOltp
from mlplane.data.warehouse import Warehouse
from mlplane.data.warehouse.local import LocalWarehouse
from mlplane.data.warehouse.service import GET_TABLE, LIST_DATASETS, LIST_TABLES, QUERY
from mlplane.errors import PermissionDenied
from mlplane.iam.loading import load_project
from tests.conftest import PROJECT_TOML

USER = "alice@acme.com"
PRINCIPALS = [
    USER,
    "experimentation",
    "training",
    "training-adhoc",
    "serving",
    "serving-runtime",
    "cicd",
]

# op -> (scope it is checked on, permissions it needs, call, the result an allowed call returns)
OPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "warehouse.query": ("project", QUERY),
    "warehouse.list_datasets": ("project", (LIST_DATASETS,)),
    "warehouse.list_tables": ("project", (LIST_TABLES,)),
    "warehouse.get_table": ("project", (GET_TABLE,)),
    "oltp.read": ("project", READ),
    "graph.query": ("secret:graph", (ACCESS,)),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("matrix") / "mlplane.toml"
    path.write_text(PROJECT_TOML)
    LocalWarehouse.for_project(path).load_table(
        "features", "events", [{"id": 1, "label": "cat"}, {"id": 2, "label": "dog"}]
    )
    LocalOltp.for_project(path).execute_script(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
        "INSERT INTO users VALUES (7, 'ada');"
    )
    graph = EmbeddedGraph.for_project(path)
    graph.execute("CREATE NODE TABLE User(id INT64, PRIMARY KEY(id))")
    graph.execute("CREATE (:User {id: 7}); CREATE (:User {id: 8})")
    return path


@pytest.fixture(autouse=True)
def no_ambient_principal(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MLPLANE_PRINCIPAL", "MLPLANE_USER", "GCE_METADATA_HOST"):
        monkeypatch.delenv(var, raising=False)


def held(project_file: Path, who: str) -> dict[str, set[str]]:
    """scope ("project", "secret:graph", ...) -> permissions `who` holds there, per the model."""
    loaded = load_project(project_file)
    model = loaded.model
    if "@" in who:
        member = f"user:{who}"
        actions = [
            a
            for a in model.actions
            if a.user_side and member in loaded.project.process_members(a.process)
        ]
    else:
        identity = model.identity(who)
        assert identity is not None, who
        actions = list(model.identity_actions(identity))
    out: dict[str, set[str]] = {}
    for action in actions:
        for grant in action.grants:
            out.setdefault(grant.scope, set()).update(grant.permissions)
    return out


def expected(project_file: Path, who: str, op: str) -> bool:
    scope, needs = OPS[op]
    return set(needs) <= held(project_file, who).get(scope, set())


def call(project_file: Path, who: str, op: str) -> Callable[[], object]:
    store, _, method = op.partition(".")
    if store == "warehouse":
        wh = Warehouse.open(project_file, who)
        return {
            "query": lambda: (
                wh.query("SELECT label FROM features.events WHERE id = @id", {"id": 2}).rows
            ),
            "list_datasets": wh.list_datasets,
            "list_tables": lambda: wh.list_tables("features"),
            "get_table": lambda: wh.get_table("features", "events").num_rows,
        }[method]
    if store == "oltp":
        oltp = Oltp.open(project_file, who)
        return lambda: oltp.read("SELECT name FROM users WHERE id = @id", {"id": 7}).rows
    graph = Graph.open(project_file, who)
    return lambda: graph.query("MATCH (u:User) WHERE u.id > $min RETURN u.id", {"min": 7}).rows


RESULTS: dict[str, object] = {
    "warehouse.query": (("dog",),),
    "warehouse.list_datasets": ("features",),
    "warehouse.list_tables": ("events",),
    "warehouse.get_table": 2,
    "oltp.read": (("ada",),),
    "graph.query": ((8,),),
}


def test_the_model_grants_what_the_requirements_say(project: Path) -> None:
    """A sanity check on the computed expectation itself (the requirements document): the
    team reads everything; serving-runtime reads data but not metadata; cicd reads nothing."""
    assert all(expected(project, USER, op) for op in OPS)
    assert expected(project, "serving-runtime", "oltp.read")
    assert not expected(project, "serving-runtime", "warehouse.list_tables")
    assert not any(expected(project, "cicd", op) for op in OPS)
    assert not expected(project, "training", "oltp.read")


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("who", PRINCIPALS)
def test_matrix(project: Path, who: str, op: str) -> None:
    fn = call(project, who, op)
    if expected(project, who, op):
        assert fn() == RESULTS[op]
        return
    with pytest.raises(PermissionDenied) as info:
        fn()
    missing = [p for p in OPS[op][1] if p not in held(project, who).get(OPS[op][0], set())]
    assert missing[0] in str(info.value), str(info.value)


class Untouchable:
    """A backend for every store that records that a call reached it, then stops it."""

    name = "untouchable"

    def __getattr__(self, attr: str) -> object:
        raise Reached(attr)


class Reached(Exception):
    pass


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("who", PRINCIPALS)
def test_only_an_allowed_call_reaches_the_backend(project: Path, who: str, op: str) -> None:
    """Authorization happens in the facade, once, for every backend (BigQuery, Spanner and
    Neo4j included): a denied principal never reaches the store or its client."""
    store, _, method = op.partition(".")
    backend: Any = Untouchable()
    outcome = Reached if expected(project, who, op) else PermissionDenied
    with pytest.raises(outcome):
        if store == "warehouse":
            wh = Warehouse.open(project, who, backend=backend)
            args = {"query": ("SELECT 1",), "list_tables": ("d",), "get_table": ("d", "t")}
            getattr(wh, method)(*args.get(method, ()))
        elif store == "oltp":
            Oltp.open(project, who, backend=backend).read("SELECT 1")
        else:
            Graph.open(project, who, backend=backend).query("RETURN 1")
