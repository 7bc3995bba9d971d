"""The local OLTP store (SQLite): real data through Spanner-style `@name` parameters, on a
read-only connection, with errors that name what is wrong."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mlplane.data.oltp import NotFound, Oltp, ParameterError, QueryError
from mlplane.data.oltp.sqlite import LocalOltp

ALICE = "alice@acme.com"
SEED = """
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, joined TEXT);
INSERT INTO users VALUES (1, 'ada', '2026-01-01'), (2, 'bob', '2026-02-01'), (3, 'cy', NULL);
"""


@pytest.fixture
def oltp(project_file: Path, monkeypatch: pytest.MonkeyPatch) -> Oltp:
    for var in ("MLPLANE_PRINCIPAL", "MLPLANE_USER", "GCE_METADATA_HOST"):
        monkeypatch.delenv(var, raising=False)
    LocalOltp.for_project(project_file).execute_script(SEED)
    return Oltp.open(project_file, "serving-runtime")


def test_reads_real_rows_with_parameters(oltp: Oltp, project_file: Path) -> None:
    assert oltp.backend.name == "sqlite"
    assert isinstance(oltp.backend, LocalOltp)
    assert oltp.backend.path == project_file.parent / ".mlplane" / "data" / "oltp.sqlite"
    rows = oltp.read(
        "SELECT id, name FROM users WHERE joined >= @since OR name = @name ORDER BY id",
        {"since": dt.date(2026, 1, 15), "name": "cy"},
    )
    assert rows.columns == ("id", "name")
    assert rows.rows == ((2, "bob"), (3, "cy"))


def test_a_read_cannot_write(oltp: Oltp, project_file: Path) -> None:
    for sql in (
        "INSERT INTO users VALUES (9, 'eve', NULL)",
        "UPDATE users SET name = 'x'",
        "DROP TABLE users",
        "PRAGMA query_only = OFF; INSERT INTO users VALUES (9, 'eve', NULL)",
    ):
        with pytest.raises(QueryError):
            oltp.read(sql)
    assert oltp.read("SELECT count(*) AS n FROM users").rows == ((3,),)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        (None, "@id"),
        ({"id": 1, "idd": 2}, "'idd'"),
        ({"id": [1, 2]}, "SQLite binds no arrays"),
        ({"id": {"a": 1}}, "'id' has a value of type dict"),
    ],
)
def test_parameters_that_do_not_bind(oltp: Oltp, params: dict[str, object], named: str) -> None:
    with pytest.raises(ParameterError) as info:
        oltp.read("SELECT name FROM users WHERE id = @id", params)
    assert named in str(info.value)


def test_unknown_table_and_missing_database(
    oltp: Oltp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(NotFound, match="sqlite: table 'orders' not found"):
        oltp.read("SELECT * FROM orders")
    with pytest.raises(QueryError, match="no such column: email"):
        oltp.read("SELECT email FROM users")
    empty = tmp_path / "empty" / "mlplane.toml"
    empty.parent.mkdir()
    from tests.conftest import PROJECT_TOML

    empty.write_text(PROJECT_TOML)
    with pytest.raises(NotFound, match=r"OLTP database .*oltp.sqlite' not found"):
        Oltp.open(empty, "serving-runtime").read("SELECT 1")
    assert not (empty.parent / ".mlplane" / "data" / "oltp.sqlite").exists()


def test_a_missing_client_package_is_named(
    project_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from mlplane.errors import ConfigError

    monkeypatch.delenv("MLPLANE_PRINCIPAL", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError, match="pip install google-cloud-spanner"):
        Oltp.open(project_file, "serving-runtime", backend="spanner")
