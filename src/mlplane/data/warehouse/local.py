"""The local warehouse: one DuckDB file, `.mlplane/data/warehouse.duckdb`, a schema per dataset.

Queries run on a read-only connection with external access off: a read action can neither
change the warehouse nor read or write other files. `load_table` (a read-write connection) is
how admins and tests seed it, from rows or from a CSV/Parquet file.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb  # type: ignore[import-not-found, unused-ignore]

from mlplane.data.warehouse.backend import check_dataset, check_table
from mlplane.data.warehouse.errors import NotFound, QueryError
from mlplane.data.warehouse.params import Params, bind
from mlplane.data.warehouse.rows import Column, Rows, TableInfo
from mlplane.data.warehouse.settings import DataSettings, data_dir
from mlplane.errors import TransientError

STORE = "duckdb"
FILE = "warehouse.duckdb"
_MISSING_TABLE = re.compile(r"Table with name (\S+) does not exist")
# DuckDB type -> the BigQuery name reported in TableInfo, and back for load_table.
_TO_BQ = {
    "BIGINT": "INT64",
    "INTEGER": "INT64",
    "SMALLINT": "INT64",
    "TINYINT": "INT64",
    "HUGEINT": "INT64",
    "DOUBLE": "FLOAT64",
    "FLOAT": "FLOAT64",
    "REAL": "FLOAT64",
    "VARCHAR": "STRING",
    "BOOLEAN": "BOOL",
    "BLOB": "BYTES",
    "DATE": "DATE",
    "TIMESTAMP": "DATETIME",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
    "JSON": "JSON",
}
_FROM_BQ = {
    "INT64": "BIGINT",
    "INTEGER": "BIGINT",
    "FLOAT64": "DOUBLE",
    "FLOAT": "DOUBLE",
    "STRING": "VARCHAR",
    "BOOL": "BOOLEAN",
    "BOOLEAN": "BOOLEAN",
    "BYTES": "BLOB",
    "DATE": "DATE",
    "DATETIME": "TIMESTAMP",
    "TIMESTAMP": "TIMESTAMPTZ",
    "NUMERIC": "DECIMAL(38,9)",
    "JSON": "JSON",
}


def bq_type(duck: str) -> str:
    if duck.startswith("DECIMAL"):
        return "NUMERIC"
    return _TO_BQ.get(duck, duck)


def infer_type(value: object) -> str:
    """The BigQuery type of a Python value, for load_table without an explicit schema."""
    for kind, name in (
        (bool, "BOOL"),
        (int, "INT64"),
        (float, "FLOAT64"),
        (decimal.Decimal, "NUMERIC"),
        (str, "STRING"),
        (bytes, "BYTES"),
        (dt.datetime, "TIMESTAMP"),
        (dt.date, "DATE"),
    ):
        if isinstance(value, kind):
            if kind is dt.datetime and getattr(value, "tzinfo", None) is None:
                return "DATETIME"
            return name
    raise QueryError(STORE, f"cannot store a value of type {type(value).__name__}")


def _as_written(message: str, name: str) -> str:
    """The table reference as the query wrote it (`dataset.table`), from DuckDB's caret
    context; `name` when there is none."""
    lines = message.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("LINE ") and "^" in lines[i + 1]:
            start = lines[i + 1].index("^")
            m = re.match(r"[\w.\"`-]+", line[start:])
            if m and m.group().replace('"', "").endswith(name):
                return m.group().replace('"', "")
    return name


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class LocalWarehouse:
    name = STORE

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_project(cls, project_file: Path) -> LocalWarehouse:
        return cls(data_dir(project_file) / FILE)

    @classmethod
    def for_settings(cls, settings: DataSettings) -> LocalWarehouse:
        return cls(settings.data_dir / FILE)

    @contextmanager
    def _read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self.path.exists():
            raise NotFound(
                STORE,
                "warehouse database",
                str(self.path),
                "nothing loaded yet: seed it with "
                'LocalWarehouse.load_table, or set [data] warehouse = "bigquery"',
            )
        config: dict[str, str | bool | int | float | list[str]] = {"enable_external_access": False}
        try:
            con = duckdb.connect(str(self.path), read_only=True, config=config)
        except duckdb.Error as exc:
            if "lock" in str(exc).lower():  # a writer (load_table) holds the file
                raise TransientError(
                    f"{STORE}: {self.path} is being written (seeded) by another process",
                    delay=1.0,
                ) from None
            raise QueryError(STORE, f"cannot open {self.path}: {exc}") from None
        try:
            yield con
        finally:
            con.close()

    # ------------------------------------------------------------------ reads

    def query(self, sql: str, params: Params | None) -> Rows:
        bound = bind(STORE, sql, params, "@", "$")
        with self._read() as con:
            try:
                cur = con.execute(bound.text, bound.params)
                columns = tuple(d[0] for d in (cur.description or ()))
                rows = tuple(tuple(r) for r in cur.fetchall()) if columns else ()
            except duckdb.CatalogException as exc:
                m = _MISSING_TABLE.search(str(exc))
                if m:
                    raise NotFound(STORE, "table", _as_written(str(exc), m.group(1))) from None
                raise QueryError(STORE, str(exc).splitlines()[0]) from None
            except duckdb.Error as exc:
                raise QueryError(STORE, str(exc).splitlines()[0]) from None
        return Rows(columns, rows)

    def list_datasets(self) -> tuple[str, ...]:
        if not self.path.exists():
            return ()
        with self._read() as con:
            got = con.execute(
                "SELECT DISTINCT table_schema FROM information_schema.tables "
                "WHERE table_catalog = current_database() AND table_schema <> 'main' ORDER BY 1"
            ).fetchall()
        return tuple(str(r[0]) for r in got)

    def list_tables(self, dataset: str) -> tuple[str, ...]:
        check_dataset(dataset)
        if dataset not in self.list_datasets():
            raise NotFound(STORE, "dataset", dataset)
        with self._read() as con:
            got = con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
                "AND table_catalog = current_database() ORDER BY 1",
                [dataset],
            ).fetchall()
        return tuple(str(r[0]) for r in got)

    def get_table(self, dataset: str, table: str) -> TableInfo:
        check_table(table)
        if table not in self.list_tables(dataset):
            raise NotFound(STORE, "table", f"{dataset}.{table}")
        with self._read() as con:
            cols = con.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? AND table_catalog = current_database()"
                " ORDER BY ordinal_position",
                [dataset, table],
            ).fetchall()
            count = con.execute(f"SELECT count(*) FROM {_ident(dataset)}.{_ident(table)}")
            num = count.fetchone()
        columns = tuple(
            Column(str(n), bq_type(str(t)), "NULLABLE" if nullable == "YES" else "REQUIRED")
            for n, t, nullable in cols
        )
        return TableInfo(dataset, table, columns, int(num[0]) if num else None)

    # ------------------------------------------------------------------ seeding (admins, tests)

    def load_table(
        self,
        dataset: str,
        table: str,
        rows: Sequence[Mapping[str, object]] = (),
        *,
        columns: Sequence[Column] | None = None,
        source: Path | None = None,
    ) -> TableInfo:
        """Create or replace `dataset.table` from `rows` (types from `columns`, else inferred
        from the first non-null value of each column) or from a CSV or Parquet `source` file.
        Not authorized: this is the local stand-in for the pipelines that fill BigQuery."""
        check_dataset(dataset)
        check_table(table)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        target = f"{_ident(dataset)}.{_ident(table)}"
        con = duckdb.connect(str(self.path))
        try:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(dataset)}")
            if source is not None:
                reader = "read_parquet" if Path(source).suffix == ".parquet" else "read_csv_auto"
                con.execute(
                    f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {reader}(?)", [str(source)]
                )
            else:
                schema = list(columns) if columns else _infer_columns(rows)
                if not schema:
                    raise QueryError(STORE, f"{dataset}.{table}: no columns and no rows to load")
                ddl = ", ".join(
                    f"{_ident(c.name)} {_FROM_BQ.get(c.type.upper(), c.type)}" for c in schema
                )
                con.execute(f"CREATE OR REPLACE TABLE {target} ({ddl})")
                if rows:
                    names = [c.name for c in schema]
                    marks = ", ".join("?" for _ in names)
                    values: list[list[Any]] = [[r.get(n) for n in names] for r in rows]
                    con.executemany(f"INSERT INTO {target} VALUES ({marks})", values)
        except duckdb.Error as exc:
            raise QueryError(STORE, f"loading {dataset}.{table}: {exc}") from None
        finally:
            con.close()
        return self.get_table(dataset, table)


def _infer_columns(rows: Sequence[Mapping[str, object]]) -> list[Column]:
    names: dict[str, str | None] = {}
    for row in rows:
        for key, value in row.items():
            if names.get(key) is None:
                names[key] = None if value is None else infer_type(value)
    return [Column(k, t or "STRING") for k, t in names.items()]
