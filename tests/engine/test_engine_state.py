"""State store: WAL, version-guarded writes, atomic journal close, stack locks."""

from __future__ import annotations

import multiprocessing
import os
import threading
import uuid
from pathlib import Path

import pytest
from fake_provider import bundle

from mlplane.engine import Journal, LockTimeout, Op, StaleWrite, StateStore
from mlplane.engine.journal import IntentStatus
from mlplane.engine.state import StateWrite


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state.db")


def test_wal_mode(store: StateStore) -> None:
    assert store.journal_mode() == "wal"


def test_guarded_writes(store: StateStore) -> None:
    hc = bundle().health_check
    store.write(StateWrite(hc.key, "s", hc, None))
    with pytest.raises(StaleWrite):
        store.write(StateWrite(hc.key, "s", hc, None))  # exists already
    rec = store.get(hc.key)
    assert rec is not None and rec.version == 1 and rec.spec == hc
    changed = hc.model_copy(update={"check_interval_sec": 20})
    store.write(StateWrite(hc.key, "s", changed, 1))
    with pytest.raises(StaleWrite):
        store.write(StateWrite(hc.key, "s", hc, 1))  # someone wrote version 2 meanwhile
    with pytest.raises(StaleWrite):
        store.write(StateWrite(hc.key, "s", None, 1))
    store.write(StateWrite(hc.key, "s", None, 2))
    store.write(StateWrite(hc.key, "s", None, 2))  # already gone: the removal's goal holds
    assert store.load() == {}


def test_concurrent_writers_never_both_win(store: StateStore) -> None:
    hc = bundle().health_check
    store.write(StateWrite(hc.key, "s", hc, None))
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def writer(i: int) -> None:
        barrier.wait()
        spec = hc.model_copy(update={"check_interval_sec": 10 + i})
        try:
            store.write(StateWrite(hc.key, "s", spec, 1))
            wins.append(i)
        except StaleWrite:
            pass

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    rec = store.get(hc.key)
    assert rec is not None and rec.version == 2 and rec.spec.check_interval_sec == 10 + wins[0]  # type: ignore[attr-defined]


def test_result_and_intent_close_are_one_transaction(store: StateStore) -> None:
    journal = Journal(store)
    hc = bundle().health_check
    intent = journal.begin(
        run_id="r", stack="s", owner="s", step_id="create:x", key=hc.key, op=Op.CREATE,
        request_id=str(uuid.uuid4()), spec=hc, declared=None, changes=(), principal="p",
    )  # fmt: skip
    store.write(StateWrite(hc.key, "s", hc, None))  # a concurrent writer got there first
    with pytest.raises(StaleWrite):
        journal.complete(intent, StateWrite(hc.key, "s", hc, None))
    [still_open] = journal.open_intents(["s"])
    assert still_open.id == intent.id and still_open.status is IntentStatus.OPEN
    journal.complete(intent, StateWrite(hc.key, "s", hc, 1))
    assert journal.open_intents(["s"]) == []
    assert store.get(hc.key).version == 2  # type: ignore[union-attr]


def test_stack_locks_exclude_each_other_not_other_stacks(store: StateStore) -> None:
    with store.lock(["serving/a/r1"]):
        with pytest.raises(LockTimeout, match="serving/a/r1"), store.lock(["serving/a/r1"], 0.05):
            pass
        with store.lock(["serving/b/r1"], 0.05):
            pass
    with store.lock(["serving/a/r1"], 0.05):
        pass


def _hold_and_die(path: str) -> None:
    with StateStore(Path(path)).lock(["serving/a/r1"]):
        os._exit(137)


def test_a_dead_process_releases_its_locks(store: StateStore) -> None:
    proc = multiprocessing.get_context("fork").Process(
        target=_hold_and_die, args=(str(store.path),)
    )
    proc.start()
    proc.join(10)
    assert proc.exitcode == 137
    with store.lock(["serving/a/r1"], 1.0):
        pass
