"""Property: whatever a journal row or a resource record holds (a disk, a bad copy or a hand
edit changed it), the engine either reads it or raises StateCorrupt, one line naming the file
and the row; `mlplane state check` never raises and names it; `--repair` makes a damaged
journal whole again, after a backup. Never a JSON, pydantic or sqlite3 traceback."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fake_provider import bootstrap_state, deploy_state, make_world
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mlplane.engine import schema
from mlplane.engine.journal import Journal
from mlplane.engine.state import StateCorrupt, StateStore
from mlplane.engine.statecheck import check_state, repair_state
from tests.loader_fuzz import (
    JSON_SOUP,
    ODD_TEXT,
    TEXT,
    VALUES,
    assert_clean,
    json_text,
    scratch,
)

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
JOURNAL_COLUMNS = ("payload", "operation", "op", "status", "kind", "name", "stack")
CELLS = st.one_of(
    TEXT,
    ODD_TEXT,
    JSON_SOUP,
    VALUES.map(json_text),
    st.integers(),
    st.none(),
    st.binary(max_size=20),
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("state-template")
    w = make_world(directory)
    w.apply(bootstrap_state()).raise_for_failures()
    w.apply(deploy_state()).raise_for_failures()
    w.close()
    with sqlite3.connect(directory / "state.db") as conn:  # one intent left open, as a crash would
        conn.execute("UPDATE journal SET status = 'open' WHERE id = (SELECT MAX(id) FROM journal)")
    conn.close()
    return directory


def copy_db(template: Path) -> Path:
    target = scratch()
    shutil.copyfile(template / "state.db", target / "state.db")
    return target / "state.db"


def set_cell(db: Path, table: str, column: str, row: int, value: Any) -> None:
    key = "id" if table == "journal" else "rowid"
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (value, row))
    conn.close()


def read_everything(db: Path) -> str | None:
    """What the engine would read; the StateCorrupt message, if any."""
    store = StateStore(db)
    try:
        store.load()
        Journal(store).entries()
        Journal(store).open_intents()
    except StateCorrupt as exc:
        return str(exc)
    finally:
        store.close()
    return None


@SETTINGS
@given(
    column=st.sampled_from(JOURNAL_COLUMNS),
    row=st.integers(1, 13),
    value=CELLS,
)
def test_a_journal_row_changed_anyhow(template: Path, column: str, row: int, value: Any) -> None:
    db = copy_db(template)
    if column != "operation" and value is None:
        value = ""  # NOT NULL columns: SQLite itself refuses a NULL there
    set_cell(db, "journal", column, row, value)
    problem = read_everything(db)
    report = check_state(db)
    event("unreadable" if problem else "still readable")
    if problem is not None:
        assert_clean(problem, str(db))
        assert f"journal row {row} " in problem
        assert [p.row for p in report.problems] == [row]
        assert_clean(report.problems[0].line(), str(db))
        repaired = repair_state(db)
        assert repaired.ok, [p.line() for p in repaired.problems]
        assert any(b.name.startswith("state.db.repair-") for b in schema.backups(db))
        assert read_everything(db) is None
    else:
        assert report.ok, [p.line() for p in report.problems]


@SETTINGS
@given(row=st.integers(1, 11), value=CELLS)
def test_a_resource_record_changed_anyhow(template: Path, row: int, value: Any) -> None:
    db = copy_db(template)
    set_cell(db, "resources", "spec", row, "" if value is None else value)
    problem = read_everything(db)
    report = check_state(db)
    event("unreadable" if problem else "still readable")
    if problem is not None:
        assert_clean(problem, str(db))
        assert "the record of " in problem and "mlplane state check" in problem
        (found,) = report.problems
        assert_clean(found.line(), str(db))
        assert not found.repairable and not repair_state(db).ok  # restored, never guessed
    else:
        assert report.ok
