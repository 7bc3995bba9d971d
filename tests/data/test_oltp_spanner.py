"""The Spanner backend on the official client (google-cloud-spanner), against the real Cloud
Spanner emulator that ships with the gcloud CLI (`bin/cloud_spanner_emulator/emulator_main`
under the SDK root), started on loopback for this module: Spanner's own SQL, types, errors and
read-only transactions. Skipped where gcloud or its emulator is absent, except under CI
(MLPLANE_REQUIRE_TOOLS=1 makes that a failure)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.cloud.spanner", reason="google-cloud-spanner is not installed")

from mlplane.data.oltp import NotFound, Oltp, ParameterError, QueryError
from mlplane.data.oltp.spanner import SpannerOltp
from tests.iam.tools import spanner_emulator

PROJECT, INSTANCE, DATABASE = "acme-ml", "mlplane", "mlplane"
DDL = [
    """CREATE TABLE users (
         id INT64 NOT NULL, name STRING(100), joined DATE, active BOOL, score FLOAT64,
         balance NUMERIC, avatar BYTES(64), seen TIMESTAMP, tags ARRAY<STRING(20)>
       ) PRIMARY KEY (id)""",
]
COLUMNS = ("id", "name", "joined", "active", "score", "balance", "avatar", "seen", "tags")
SEEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
ROWS = [
    (7, "ada", dt.date(2026, 1, 1), True, 0.5, decimal.Decimal("12.50"), b"\x00\x01", SEEN,
     ["ml", "ops"]),
    (8, "bob", dt.date(2024, 6, 1), False, None, None, None, None, []),
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Spanner emulator exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the Spanner emulator did not listen on {port} in {timeout} s")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = spanner_emulator()
    port = _free_port()
    log = tmp_path_factory.mktemp("spanner") / "emulator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "--host_port", f"127.0.0.1:{port}"], stdout=out, stderr=out
        )
    try:
        _wait_for(port, proc)
        host = f"127.0.0.1:{port}"
        _seed(host)
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _client(host: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import spanner

    os.environ["SPANNER_EMULATOR_HOST"] = host  # read by the client at construction
    try:
        return spanner.Client(project=PROJECT, credentials=AnonymousCredentials())
    finally:
        os.environ.pop("SPANNER_EMULATOR_HOST", None)


def _seed(host: str) -> None:
    client = _client(host)
    config = f"projects/{PROJECT}/instanceConfigs/emulator-config"
    instance = client.instance(INSTANCE, configuration_name=config, node_count=1)
    instance.create().result(60)
    database = instance.database(DATABASE, ddl_statements=DDL)
    database.create().result(60)
    with database.batch() as batch:  # mutations take BYTES base64-encoded
        batch.insert("users", COLUMNS, [_b64(r) for r in ROWS])


def _b64(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(base64.b64encode(v) if isinstance(v, bytes) else v for v in row)


@pytest.fixture
def oltp(emulator: str, project_file: Path, monkeypatch: pytest.MonkeyPatch) -> Oltp:
    monkeypatch.setenv("SPANNER_EMULATOR_HOST", emulator)
    monkeypatch.delenv("MLPLANE_PRINCIPAL", raising=False)
    return Oltp.open(project_file, "serving-runtime", backend="spanner")


def test_read_decodes_spanner_types(oltp: Oltp) -> None:
    assert isinstance(oltp.backend, SpannerOltp)
    rows = oltp.read("SELECT * FROM users ORDER BY id")
    assert rows.columns == COLUMNS
    assert rows.rows == tuple(tuple(r) for r in ROWS)


def test_typed_parameters_bind_as_spanner_types(oltp: Oltp) -> None:
    sql = (
        "SELECT id, name FROM users WHERE id = @id AND joined >= @since AND active = @active "
        "AND score < @limit AND balance = @balance AND seen = @seen AND avatar = @avatar "
        "AND @tag IN UNNEST(tags)"
    )
    params = {
        "id": 7,
        "since": dt.date(2025, 1, 1),
        "active": True,
        "limit": 1.0,
        "balance": decimal.Decimal("12.5"),
        "seen": SEEN,
        "avatar": b"\x00\x01",
        "tag": "ops",
    }
    assert oltp.read(sql, params).rows == ((7, "ada"),)
    arrays = oltp.read("SELECT id FROM users WHERE id IN UNNEST(@ids) ORDER BY id", {"ids": [8, 7]})
    assert arrays.rows == ((7,), (8,))


def test_reads_are_read_only_and_strong(oltp: Oltp, emulator: str) -> None:
    with pytest.raises(QueryError, match="spanner: query failed"):
        oltp.read("INSERT INTO users (id, name) VALUES (9, 'eve')")
    assert oltp.read("SELECT COUNT(*) FROM users WHERE id = 9").rows == ((0,),)
    # a write committed elsewhere is seen by the next read (a strong, single-use snapshot)
    database = _client(emulator).instance(INSTANCE).database(DATABASE)
    with database.batch() as batch:
        batch.insert("users", ("id", "name"), [(10, "new")])
    try:
        assert oltp.read("SELECT name FROM users WHERE id = 10").rows == (("new",),)
    finally:
        with database.batch() as batch:
            from google.cloud.spanner import KeySet

            batch.delete("users", KeySet(keys=[[10]]))


def test_unknown_table_missing_database_and_bad_sql(
    emulator: str, project_file: Path, monkeypatch: pytest.MonkeyPatch, oltp: Oltp
) -> None:
    with pytest.raises(NotFound, match="spanner: table 'orders' not found"):
        oltp.read("SELECT * FROM orders")
    with pytest.raises(QueryError, match=r"spanner: query failed: .*Syntax error"):
        oltp.read("SELEC 1")
    project_file.write_text(project_file.read_text() + '\n[data]\nspanner_database = "nope"\n')
    missing = Oltp.open(project_file, "serving-runtime", backend="spanner")
    with pytest.raises(NotFound, match=r"spanner: database '.*/databases/nope' not found"):
        missing.read("SELECT 1")


def test_parameters_that_do_not_bind_never_reach_spanner(
    project_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unit: binding fails before any call (nothing listens at this address)."""
    monkeypatch.setenv("SPANNER_EMULATOR_HOST", "127.0.0.1:9")
    oltp = Oltp.open(project_file, "serving-runtime", backend="spanner")
    with pytest.raises(ParameterError, match="spanner: params: the query uses @since"):
        oltp.read("SELECT id FROM users WHERE id = @id AND joined >= @since", {"id": 7})
