"""The BigQuery backend on the official client (google-cloud-bigquery), against `bqemulator`
(a DuckDB-backed BigQuery REST emulator) started on loopback by this module, and at the
client's boundary (its query-parameter types, google-api-core errors) without it.

The emulator is found as $MLPLANE_BQEMULATOR or `bqemulator` on PATH; it needs pinned packages
of its own (`bqemulator duckdb==1.5.5 duckdb-extension-spatial==1.5.5 numpy`), so it usually
lives in a venv of its own. Without it the emulator tests skip, saying so.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.cloud.bigquery", reason="google-cloud-bigquery is not installed")

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from mlplane.data.warehouse import Column, NotFound, ParameterError, QueryError, Warehouse
from mlplane.data.warehouse.bigquery import (
    ENDPOINT_ENV,
    BigQueryWarehouse,
    map_error,
    query_parameters,
)
from mlplane.errors import PermissionDenied, TransientError

PROJECT = "acme-ml"
ALICE = "alice@acme.com"
START_TIMEOUT = 60.0


def emulator_binary() -> str | None:
    explicit = os.environ.get("MLPLANE_BQEMULATOR")
    if explicit:
        return explicit
    return shutil.which("bqemulator")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = emulator_binary()
    if not binary:
        pytest.skip(
            "bqemulator not found ($MLPLANE_BQEMULATOR or PATH): the BigQuery backend is "
            "tested here only at the client boundary"
        )
    log = tmp_path_factory.mktemp("bqemulator") / "emulator.log"
    rest, grpc_port = free_port(), free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "start", "--rest-host", "127.0.0.1", "--rest-port", str(rest),
             "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
             "--project", PROJECT, "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    url = f"http://127.0.0.1:{rest}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"bqemulator exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(
                    f"{url}/bigquery/v2/projects/{PROJECT}/datasets", timeout=2
                ):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"bqemulator did not answer in {START_TIMEOUT}s")
                time.sleep(0.2)
        seed(url)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def seed(url: str) -> None:
    client = BigQueryWarehouse(PROJECT, endpoint=url).client
    client.create_dataset("features", exists_ok=True)
    table = bigquery.Table(
        f"{PROJECT}.features.events",
        schema=[
            bigquery.SchemaField("id", "INT64", mode="REQUIRED"),
            bigquery.SchemaField("label", "STRING"),
            bigquery.SchemaField("score", "FLOAT64"),
        ],
    )
    client.create_table(table, exists_ok=True)
    errors = client.insert_rows_json(
        f"{PROJECT}.features.events",
        [
            {"id": 1, "label": "cat", "score": 0.5},
            {"id": 2, "label": "dog", "score": 0.75},
            {"id": 3, "label": None, "score": 1.0},
        ],
    )
    assert not errors, errors


@pytest.fixture
def wh(endpoint: str, project_file: Path, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    monkeypatch.delenv("MLPLANE_PRINCIPAL", raising=False)
    monkeypatch.setenv(ENDPOINT_ENV, endpoint)
    return Warehouse.open(project_file, ALICE, backend="bigquery")


# ---------------------------------------------------------------------- against the emulator


def test_query_with_parameters(wh: Warehouse) -> None:
    assert isinstance(wh.backend, BigQueryWarehouse)
    rows = wh.query(
        "SELECT id, label FROM features.events WHERE score >= @min AND id <> @skip ORDER BY id",
        {"min": 0.6, "skip": 3},
    )
    assert rows.columns == ("id", "label")
    assert rows.rows == ((2, "dog"),)


def test_array_parameter(wh: Warehouse) -> None:
    rows = wh.query(
        "SELECT id FROM features.events WHERE id IN UNNEST(@ids) ORDER BY id", {"ids": [1, 3]}
    )
    assert rows.rows == ((1,), (3,))


def test_metadata(wh: Warehouse) -> None:
    assert "features" in wh.list_datasets()
    assert wh.list_tables("features") == ("events",)
    info = wh.get_table("features", "events")
    assert info.columns == (
        Column("id", "INT64", "REQUIRED"),
        Column("label", "STRING"),
        Column("score", "FLOAT64"),
    )
    assert info.num_rows == 3


def test_unknown_table_and_dataset(wh: Warehouse) -> None:
    with pytest.raises(NotFound, match=r"bigquery: table '.*features\.nope' not found"):
        wh.query("SELECT * FROM features.nope")
    with pytest.raises(NotFound, match=r"table 'features\.nope' not found"):
        wh.get_table("features", "nope")
    with pytest.raises(NotFound, match="dataset 'nope' not found"):
        wh.list_tables("nope")


def test_parameters_that_do_not_bind_fail_before_a_job_is_made(wh: Warehouse) -> None:
    with pytest.raises(ParameterError, match=r"bigquery: params: the query uses @min"):
        wh.query("SELECT id FROM features.events WHERE score > @min")
    with pytest.raises(ParameterError, match="given 'mni'"):
        wh.query("SELECT id FROM features.events WHERE score > @min", {"min": 1, "mni": 1})


def test_a_bad_query_is_a_query_error(wh: Warehouse) -> None:
    with pytest.raises(QueryError, match="bigquery: query failed"):
        wh.query("SELEC id FROM features.events")


# ---------------------------------------------------------------------- at the client boundary


def test_parameter_types_are_the_clients_own() -> None:
    params: dict[str, object] = {
        "b": True,
        "i": 7,
        "f": 0.5,
        "n": Decimal("1.25"),
        "s": "x",
        "raw": b"\x00",
        "day": dt.date(2026, 1, 2),
        "ts": dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
        "local": dt.datetime(2026, 1, 2),
        "null": None,
        "ids": [1, 2],
    }
    got: dict[str, Any] = {p.name: p for p in query_parameters(params)}
    types = {k: v.type_ for k, v in got.items() if k != "ids"}
    assert types == {
        "b": "BOOL",
        "i": "INT64",
        "f": "FLOAT64",
        "n": "NUMERIC",
        "s": "STRING",
        "raw": "BYTES",
        "day": "DATE",
        "ts": "TIMESTAMP",
        "local": "DATETIME",
        "null": "STRING",
    }
    assert isinstance(got["ids"], bigquery.ArrayQueryParameter)
    assert got["ids"].array_type == "INT64" and got["ids"].values == [1, 2]
    assert got["i"].to_api_repr()["parameterValue"] == {"value": "7"}


def test_google_errors_become_mlplane_errors() -> None:
    nf = map_error(gexc.NotFound("Not found: Table acme-ml:features.nope was not found"), "q")
    assert isinstance(nf, NotFound) and nf.name == "acme-ml:features.nope"
    assert isinstance(map_error(gexc.Forbidden("Access Denied"), "q"), PermissionDenied)
    assert isinstance(map_error(gexc.TooManyRequests("slow down"), "q"), TransientError)
    assert isinstance(map_error(gexc.InternalServerError("boom"), "q"), TransientError)
    assert isinstance(map_error(gexc.BadRequest("Syntax error"), "q"), QueryError)
    with pytest.raises(ValueError):
        map_error(ValueError("not google's"), "q")


def test_the_client_is_built_lazily_and_for_the_emulator() -> None:
    backend = BigQueryWarehouse(PROJECT, endpoint="http://127.0.0.1:1")
    assert backend._client is None
    client = backend.client
    assert client.project == PROJECT
    assert client._connection.API_BASE_URL == "http://127.0.0.1:1"
