"""The Spanner backend on the official client (google-cloud-spanner), over gRPC on loopback
against the mock Spanner server that ships with that client
(`google.cloud.spanner_v1.testing`): it replays canned result sets for exact SQL, so this checks
the client boundary with Spanner's own request and response types (the ExecuteSqlRequest our
reads send, the PartialResultSets they decode), not Spanner's SQL semantics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.cloud.spanner", reason="google-cloud-spanner is not installed")
pytest.importorskip(
    "google.cloud.spanner_v1.testing.mock_spanner",
    reason="this google-cloud-spanner ships no mock server",
)

import grpc
from google.cloud.spanner_v1.testing import spanner_database_admin_pb2_grpc as admin_grpc
from google.cloud.spanner_v1.testing import spanner_pb2_grpc as spanner_grpc
from google.cloud.spanner_v1.testing.mock_database_admin import DatabaseAdminServicer
from google.cloud.spanner_v1.testing.mock_spanner import SpannerServicer
from google.cloud.spanner_v1.types import result_set, spanner
from google.cloud.spanner_v1.types import type as sptype
from google.protobuf import struct_pb2
from grpc_status.rpc_status import _Status

from mlplane.data.oltp import NotFound, Oltp, ParameterError, QueryError
from mlplane.data.oltp.spanner import SpannerOltp

SQL = "SELECT id, name, joined FROM users WHERE id = @id AND joined >= @since"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[SpannerServicer, int]]:
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = SpannerServicer()
    spanner_grpc.add_SpannerServicer_to_server(servicer, srv)
    admin_grpc.add_DatabaseAdminServicer_to_server(DatabaseAdminServicer(), srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        yield servicer, port
    finally:
        srv.stop(0)


def field(name: str, code: Any) -> sptype.StructType.Field:
    return sptype.StructType.Field(name=name, type_=sptype.Type(code=code))


@pytest.fixture
def oltp(
    server: tuple[SpannerServicer, int], project_file: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Oltp]:
    servicer, port = server
    monkeypatch.setenv("SPANNER_EMULATOR_HOST", f"127.0.0.1:{port}")
    monkeypatch.delenv("MLPLANE_PRINCIPAL", raising=False)
    servicer.clear_requests()
    servicer.mock_spanner.clear_results()
    meta = result_set.ResultSetMetadata(
        row_type=sptype.StructType(
            fields=[
                field("id", sptype.TypeCode.INT64),
                field("name", sptype.TypeCode.STRING),
                field("joined", sptype.TypeCode.DATE),
            ]
        )
    )
    row = struct_pb2.ListValue(
        values=[
            struct_pb2.Value(string_value="7"),  # INT64 travels as a string
            struct_pb2.Value(string_value="ada"),
            struct_pb2.Value(string_value="2026-01-01"),
        ]
    )
    servicer.mock_spanner.add_result(SQL, result_set.ResultSet(metadata=meta, rows=[row]))
    yield Oltp.open(project_file, "serving-runtime", backend="spanner")


def sql_requests(servicer: SpannerServicer) -> list[spanner.ExecuteSqlRequest]:
    return [r for r in servicer.requests if isinstance(r, spanner.ExecuteSqlRequest)]


def test_read_decodes_spanner_types(oltp: Oltp, server: tuple[SpannerServicer, int]) -> None:
    assert isinstance(oltp.backend, SpannerOltp)
    rows = oltp.read(SQL, {"id": 7, "since": dt.date(2025, 1, 1)})
    assert rows.columns == ("id", "name", "joined")
    assert rows.rows == ((7, "ada", dt.date(2026, 1, 1)),)


def test_the_request_is_a_strong_read_only_query_with_typed_params(
    oltp: Oltp, server: tuple[SpannerServicer, int]
) -> None:
    oltp.read(SQL, {"id": 7, "since": dt.date(2025, 1, 1)})
    (request,) = sql_requests(server[0])
    assert request.sql == SQL
    assert request.session.startswith("projects/acme-ml/instances/mlplane/databases/mlplane/")
    assert request.transaction.single_use.read_only.strong
    assert dict(request.params) == {"id": "7", "since": "2025-01-01"}
    assert request.param_types["id"].code == sptype.TypeCode.INT64
    assert request.param_types["since"].code == sptype.TypeCode.DATE


def test_parameters_that_do_not_bind_never_reach_spanner(
    oltp: Oltp, server: tuple[SpannerServicer, int]
) -> None:
    with pytest.raises(ParameterError, match="spanner: params: the query uses @since"):
        oltp.read(SQL, {"id": 7})
    assert sql_requests(server[0]) == []


def test_unknown_table_and_missing_database(
    oltp: Oltp, server: tuple[SpannerServicer, int]
) -> None:
    mock = server[0].mock_spanner
    mock.add_error(
        "ExecuteStreamingSql",
        _Status(grpc.StatusCode.INVALID_ARGUMENT, "Table not found: orders", ()),
    )
    with pytest.raises(NotFound, match="spanner: table 'orders' not found"):
        oltp.read("SELECT * FROM orders")
    mock.add_error(
        "ExecuteStreamingSql",
        _Status(grpc.StatusCode.NOT_FOUND, "Database not found: mlplane", ()),
    )
    with pytest.raises(NotFound, match=r"spanner: database '.*/databases/mlplane' not found"):
        oltp.read("SELECT 1")
    mock.add_error(
        "ExecuteStreamingSql",
        _Status(grpc.StatusCode.INVALID_ARGUMENT, "Syntax error: Unexpected identifier", ()),
    )
    with pytest.raises(QueryError, match="Syntax error"):
        oltp.read("SELEC 1")
