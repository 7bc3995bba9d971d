"""The local warehouse (DuckDB): real data, BigQuery-style `@name` parameters, read-only reads,
and errors that name what is wrong."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

pytest.importorskip("duckdb", reason="the local warehouse needs duckdb (pip install duckdb)")

from mlplane.data.warehouse import (
    Column,
    NotFound,
    ParameterError,
    QueryError,
    TableInfo,
    Warehouse,
)
from mlplane.data.warehouse.local import LocalWarehouse
from mlplane.errors import ConfigError

ALICE = "alice@acme.com"
EVENTS = [
    {"id": 1, "label": "cat", "score": 0.5, "ts": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},
    {"id": 2, "label": "dog", "score": 0.75, "ts": dt.datetime(2026, 1, 2, tzinfo=dt.UTC)},
    {"id": 3, "label": None, "score": 1.0, "ts": dt.datetime(2026, 1, 3, tzinfo=dt.UTC)},
]


@pytest.fixture
def wh(project_file: Path, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    for var in ("MLPLANE_PRINCIPAL", "MLPLANE_USER", "GCE_METADATA_HOST"):
        monkeypatch.delenv(var, raising=False)
    LocalWarehouse.for_project(project_file).load_table("features", "events", EVENTS)
    return Warehouse.open(project_file, ALICE)


def test_opens_the_project_default_backend_under_the_state_dir(
    wh: Warehouse, project_file: Path
) -> None:
    assert wh.backend.name == "duckdb"
    assert isinstance(wh.backend, LocalWarehouse)
    assert wh.backend.path == project_file.parent / ".mlplane" / "data" / "warehouse.duckdb"


def test_query_with_parameters_returns_typed_rows(wh: Warehouse) -> None:
    rows = wh.query(
        "SELECT id, label, score FROM features.events WHERE score >= @min AND id <> @skip "
        "ORDER BY id",
        {"min": 0.6, "skip": 3},
    )
    assert rows.columns == ("id", "label", "score")
    assert rows.rows == ((2, "dog", 0.75),)
    assert rows.dicts() == [{"id": 2, "label": "dog", "score": 0.75}]
    assert rows.column("label") == ["dog"]
    assert len(rows) == 1


def test_parameter_sigils_in_strings_and_comments_are_not_parameters(wh: Warehouse) -> None:
    rows = wh.query(
        "SELECT '@not_a_param' AS s, count(*) AS n FROM features.events -- @nor_this\n"
        "WHERE id > @id",
        {"id": 1},
    )
    assert rows.rows == (("@not_a_param", 2),)


def test_array_decimal_date_and_null_parameters_bind(wh: Warehouse) -> None:
    rows = wh.query(
        "SELECT id FROM features.events WHERE list_contains(@ids, id) "
        "AND ts >= @since AND @d > 0 AND @nothing IS NULL ORDER BY id",
        {"ids": [1, 3], "since": dt.date(2026, 1, 1), "d": Decimal("1.5"), "nothing": None},
    )
    assert rows.rows == ((1,), (3,))


def test_metadata(wh: Warehouse) -> None:
    assert wh.list_datasets() == ("features",)
    assert wh.list_tables("features") == ("events",)
    info = wh.get_table("features", "events")
    assert info == TableInfo(
        "features",
        "events",
        (
            Column("id", "INT64"),
            Column("label", "STRING"),
            Column("score", "FLOAT64"),
            Column("ts", "TIMESTAMP"),
        ),
        3,
    )
    assert info.ref == "features.events"


def test_load_table_with_an_explicit_schema_and_from_a_csv_file(
    wh: Warehouse, project_file: Path, tmp_path: Path
) -> None:
    local = LocalWarehouse.for_project(project_file)
    local.load_table("features", "empty", columns=[Column("x", "NUMERIC"), Column("y", "DATE")])
    assert [c.type for c in wh.get_table("features", "empty").columns] == ["NUMERIC", "DATE"]
    csv = tmp_path / "labels.csv"
    csv.write_text("id,name\n1,a\n2,b\n")
    local.load_table("raw", "labels", source=csv)
    assert wh.list_datasets() == ("features", "raw")
    assert wh.query("SELECT name FROM raw.labels ORDER BY id").column("name") == ["a", "b"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({}, "@min"),  # used, not given
        ({"min": 1, "mni": 2}, "'mni'"),  # given, not used: a typo
        ({"min": object()}, "'min' has a value of type object"),
        ({"1x": 1, "min": 1}, "'1x' is not an identifier"),
    ],
)
def test_parameters_that_do_not_bind_name_the_parameter(
    wh: Warehouse, params: dict[str, object], named: str
) -> None:
    with pytest.raises(ParameterError) as info:
        wh.query("SELECT id FROM features.events WHERE id > @min", params)
    assert named in str(info.value)
    assert str(info.value).startswith("duckdb: params:")


def test_unknown_table_dataset_and_column(wh: Warehouse) -> None:
    with pytest.raises(NotFound, match=r"table 'features\.nope' not found"):
        wh.query("SELECT * FROM features.nope")
    with pytest.raises(NotFound, match=r"table 'features\.nope' not found"):
        wh.get_table("features", "nope")
    with pytest.raises(NotFound, match="dataset 'nope' not found"):
        wh.list_tables("nope")
    with pytest.raises(QueryError, match="colour"):
        wh.query("SELECT colour FROM features.events")
    with pytest.raises(QueryError, match="syntax error"):
        wh.query("SELEC 1")
    with pytest.raises(ConfigError, match="not a dataset id"):
        wh.list_tables("bad name; DROP")


def test_reads_cannot_write_or_touch_files(wh: Warehouse, tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="read-only"):
        wh.query("INSERT INTO features.events (id) VALUES (9)")
    with pytest.raises(QueryError, match="read-only"):
        wh.query("DROP TABLE features.events")
    with pytest.raises(QueryError):
        wh.query(f"COPY features.events TO '{tmp_path / 'out.csv'}'")
    with pytest.raises(QueryError):
        wh.query(f"SELECT * FROM read_csv_auto('{tmp_path / 'x.csv'}')")
    assert not (tmp_path / "out.csv").exists()
    assert wh.get_table("features", "events").num_rows == 3


def test_an_empty_warehouse(project_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPLANE_PRINCIPAL", raising=False)
    wh = Warehouse.open(project_file, ALICE)
    assert wh.list_datasets() == ()
    with pytest.raises(NotFound, match=r"warehouse database .* not found \(nothing loaded yet"):
        wh.query("SELECT 1")
    with pytest.raises(ParameterError, match="the query is empty"):
        wh.query("  ")


def test_an_unknown_backend_is_a_config_error(project_file: Path) -> None:
    with pytest.raises(ConfigError, match="unknown backend 'oracle'"):
        Warehouse.open(project_file, ALICE, backend="oracle")


def test_a_read_while_another_process_seeds_is_transient(wh: Warehouse, project_file: Path) -> None:
    import subprocess
    import sys

    from mlplane.errors import TransientError

    path = LocalWarehouse.for_project(project_file).path
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,sys; c=duckdb.connect({str(path)!r}); "
         "print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(TransientError, match="being written"):
            wh.query("SELECT 1")
    finally:
        holder.communicate("", timeout=10)
    assert wh.query("SELECT 1 AS one").rows == ((1,),)


def test_the_sdk_imports_no_store_engine_or_cloud_sdk_until_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mlplane.data.warehouse, mlplane.data.oltp, mlplane.data.graph;"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'google', 'duckdb', 'ladybug', 'neo4j'});"
        "assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
