"""The state database at rest: owner-only files, versioned schema with a backup before each
migration, and damage reported as one line naming the file and the recovery (`mlplane state
check [--repair]`), never an sqlite3 or JSON traceback."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_provider import World, bootstrap_state, deploy_state, make_world

from mlplane.engine import schema
from mlplane.engine.crashpoints import CrashPoint
from mlplane.engine.state import StateCorrupt, StateStore
from mlplane.engine.statecheck import check_state, repair_state

SRC = Path(__file__).parents[2] / "src"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what most users have: new files 0644, directories 0755
    try:
        yield
    finally:
        os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def state_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "mlplane", "state", "check", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def deployed_world(directory: Path) -> World:
    w = make_world(directory)
    w.apply(bootstrap_state()).raise_for_failures()
    w.apply(deploy_state()).raise_for_failures()
    return w


def test_every_file_the_store_writes_is_owner_only(tmp_path: Path, loose_umask: None) -> None:
    directory = tmp_path / "proj" / ".mlplane"
    w = deployed_world(directory)  # the store made the directory; applying took stack locks
    with w.store.connection():  # open: the WAL and shared-memory files exist
        files = [directory / n for n in ("state.db", "state.db-wal", "state.db-shm")]
        assert all(f.exists() for f in files)
        locks = sorted((directory / "state.db.locks").iterdir())
        assert locks  # stack and resource locks
        assert {f.name: mode(f) for f in files + locks} == {f.name: 0o600 for f in files + locks}
    assert mode(directory) == 0o700 and mode(directory / "state.db.locks") == 0o700
    w.close()
    assert check_state(directory / "state.db").ok


def test_files_an_older_mlplane_left_readable_are_tightened(tmp_path: Path) -> None:
    w = deployed_world(tmp_path)
    w.close()
    loose = [tmp_path, tmp_path / "state.db", tmp_path / "state.db.locks"]
    loose += list((tmp_path / "state.db.locks").iterdir())
    for p in loose:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    report = check_state(tmp_path / "state.db")
    assert {p.message.split(":")[0] for p in report.problems} == {str(p) for p in loose}
    assert all(p.repairable and "--repair" in p.recovery for p in report.problems)
    assert repair_state(tmp_path / "state.db").ok
    assert {mode(p) for p in loose} == {0o700, 0o600}
    # Opening the store tightens them too.
    os.chmod(tmp_path / "state.db", 0o644)
    StateStore(tmp_path / "state.db").close()
    assert mode(tmp_path / "state.db") == 0o600


def old_unversioned_db(path: Path) -> None:
    """A state.db as mlplane wrote it before the schema had a version."""
    with sqlite3.connect(path) as conn:
        conn.executescript(schema.RESOURCES + schema.JOURNAL)
        conn.execute(
            "INSERT INTO resources VALUES ('healthCheck', 'hc', 's', ?, 1, 0)",
            ('{"name": "hc"}',),
        )
    conn.close()
    os.chmod(path, 0o644)


def test_a_migration_is_preceded_by_a_backup(tmp_path: Path, loose_umask: None) -> None:
    db = tmp_path / "state.db"
    old_unversioned_db(db)
    assert check_state(db).schema_version == 0
    store = StateStore(db)
    assert store.backup is not None and store.backup.name.startswith("state.db.v0-")
    assert mode(store.backup) == 0o600 and mode(db) == 0o600
    with store.connection() as conn:
        assert schema.version(conn) == schema.SCHEMA_VERSION
    store.close()
    with sqlite3.connect(store.backup) as saved:  # the backup is the database as it was
        assert schema.version(saved) == 0
        assert saved.execute("SELECT kind, name FROM resources").fetchall() == [
            ("healthCheck", "hc")
        ]
    saved.close()
    assert StateStore(db).backup is None  # migrated once: no second backup
    assert schema.backups(db) == [store.backup]


def test_a_fresh_database_needs_no_backup(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    assert store.backup is None and schema.backups(tmp_path / "state.db") == []
    store.close()


def test_a_newer_schema_is_refused_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    StateStore(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(schema.SchemaTooNew, match="upgrade mlplane") as err:
        StateStore(db)
    assert str(db) in str(err.value) and "\n" not in str(err.value)
    done = state_cli("--db", str(db))
    assert done.returncode == 1 and "newer mlplane" in done.stderr


@pytest.mark.parametrize("keep", [100, 0.5])
def test_a_truncated_state_db_is_one_line_naming_it_and_the_recovery(
    tmp_path: Path, keep: float
) -> None:
    w = deployed_world(tmp_path)
    w.close()
    db = tmp_path / "state.db"
    size = db.stat().st_size
    with open(db, "r+b") as f:
        f.truncate(int(size * keep) if keep < 1 else int(keep))
    done = state_cli("--db", str(db))
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {db}: the state database is damaged")
    assert "move it aside" in lines[0] and ".recover" in lines[0]
    assert "Traceback" not in done.stderr
    # The engine says the same in one line, with the way to the check.
    with pytest.raises(StateCorrupt) as err:
        make_world(tmp_path).apply(deploy_state())
    assert str(err.value).startswith(f"{db}: the state database is damaged")
    assert "mlplane state check" in str(err.value) and "\n" not in str(err.value)
    # --repair changes nothing it cannot make whole.
    assert state_cli("--db", str(db), "--repair").returncode == 1


def test_a_damaged_file_with_a_backup_names_the_backup(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    old_unversioned_db(db)
    backup = StateStore(db).backup
    db.write_bytes(b"not a database at all, " * 100)
    (problem,) = check_state(db).problems
    assert f"cp {backup} {db}" in problem.line()


def crash_with_open_intents(directory: Path) -> None:
    import multiprocessing

    from fake_provider import run_child

    w = make_world(directory)
    w.apply(bootstrap_state()).raise_for_failures()
    w.close()
    point = CrashPoint("autoscaler", "create:autoscaler/sentiment-r1-as", "after-call")
    proc = multiprocessing.get_context("fork").Process(
        target=run_child, args=(str(directory), "deploy", "sentiment", "r1", point)
    )
    proc.start()
    proc.join(30)
    assert proc.exitcode == 137


def test_a_corrupt_journal_row_is_one_line_then_repaired(tmp_path: Path) -> None:
    crash_with_open_intents(tmp_path)
    db = tmp_path / "state.db"
    with sqlite3.connect(db) as conn:
        (row,) = conn.execute(
            "SELECT id FROM journal WHERE status = 'open' AND kind = 'autoscaler'"
        ).fetchone()
        conn.execute("UPDATE journal SET payload = '{\"spec\": {trunc' WHERE id = ?", (row,))
    conn.close()
    report = check_state(db)
    assert [p.row for p in report.problems] == [row]
    assert not any("autoscaler" in d for d in report.open_intents)  # unreadable: not listed
    # The engine refuses to guess, in one line.
    w = make_world(tmp_path)
    with pytest.raises(StateCorrupt) as err:
        w.apply(deploy_state())
    w.close()
    message = str(err.value)
    assert message.startswith(f"{db}: journal row {row} (open create of autoscaler/")
    assert "mlplane state check --repair" in message and "\n" not in message
    # The check: one line naming the file, the row and the repair.
    done = state_cli("--db", str(db))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert f"{db}: journal row {row}" in line and "--repair` closes it as failed" in line
    assert "1 that `mlplane state check --repair` would make" in done.stdout
    # The repair: a backup, the row closed as failed, then an apply converges.
    fixed = state_cli("--db", str(db), "--repair")
    assert fixed.returncode == 0, fixed.stderr
    assert f"journal row {row} closed as failed" in fixed.stdout
    assert any(b.name.startswith("state.db.repair-") for b in schema.backups(db))
    w = make_world(tmp_path)
    w.cloud.elapse()  # the crashed create finished at the cloud meanwhile
    report = w.apply(deploy_state())
    assert report.ok, report.render()
    adopted = report.plan.step("noop:autoscaler/sentiment-r1-as")
    assert adopted.op == "record" and report.result(adopted.id).status == "done"
    assert w.engine.journal.open_intents() == []
    assert {k: r.spec for k, r in w.store.load().items()} == w.cloud.resources()
    w.close()


def test_an_unreadable_record_is_named_and_not_guessed_at(tmp_path: Path) -> None:
    w = deployed_world(tmp_path)
    w.close()
    db = tmp_path / "state.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE resources SET spec = '{\"name\": 7}' WHERE kind = 'autoscaler'")
    conn.close()
    with pytest.raises(StateCorrupt, match=r"the record of autoscaler/sentiment-r1-as .* is "):
        make_world(tmp_path).store.load()
    done = state_cli("--db", str(db), "--repair")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert "not repaired automatically" in line and "DELETE FROM resources" in line
    assert "https://errors.pydantic.dev" not in line


def test_the_check_finds_the_database_from_the_project_file(tmp_path: Path) -> None:
    project = tmp_path / "mlplane.toml"
    done = subprocess.run(
        [sys.executable, "-m", "mlplane", "-f", str(project), "state", "check"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        timeout=60,
    )
    hint = "no such file: run in a project, or give -f FILE or --db PATH"
    assert (done.returncode, done.stderr) == (2, f"error: {project}: {hint}\n")
    project.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "mlplane", "-f", str(project), "state", "check"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        timeout=60,
    )
    assert done.returncode == 0 and "no state yet" in done.stdout
    w = deployed_world(tmp_path / ".mlplane")
    w.close()
    done = subprocess.run(
        [sys.executable, "-m", "mlplane", "-f", str(project), "state", "check"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "recorded:  11 resource(s) in 2 stack(s)" in done.stdout
    assert "repairs:   none needed" in done.stdout
