"""Pieces of the team state that need no Cloud Storage: the store's lease hook, snapshots and
repointing; the lock's record; the Cloud Storage client's endpoint and error mapping."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlplane.apis.credentials import StaticToken
from mlplane.engine.state import StateStore, StateWrite
from mlplane.engine.team_records import LockInfo, SyncRecord
from mlplane.errors import PermanentError, PermissionDenied
from mlplane.model.compute import FRONTEND_STACK, frontend
from mlplane.providers.errors import ProviderUnavailable
from mlplane.providers.gcp.storage_objects import CloudStorageObjects, storage_base


def specs() -> tuple[object, ...]:
    return tuple(frontend(endpoints_service="models.endpoints.p.cloud.goog").resources)


def test_the_lease_runs_inside_the_stack_locks_for_the_whole_apply(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "a.db")
    seen: list[tuple[str, ...]] = []

    @contextmanager
    def lease(stacks: tuple[str, ...], timeout: float) -> Iterator[None]:
        seen.append(("enter", *stacks))
        yield
        seen.append(("exit", str(store.writes)))

    store.lease = lease
    with store.lock(["b", "a", "b"]):
        spec = specs()[0]
        store.write(StateWrite(spec.key, FRONTEND_STACK, spec, None))  # type: ignore[attr-defined]
        assert seen == [("enter", "a", "b")]
    assert seen[-1] == ("exit", "1")


def test_a_snapshot_is_self_contained_and_use_repoints_the_store(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "a.db")
    for spec in specs():
        store.write(StateWrite(spec.key, FRONTEND_STACK, spec, None))  # type: ignore[attr-defined]
    copy = store.snapshot(tmp_path / "copy.db")
    assert copy.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(copy) as conn:  # no WAL beside it: everything is in the file
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("SELECT COUNT(*) FROM resources").fetchone()[0] == len(specs())
    assert not (tmp_path / "copy.db-wal").exists()
    before = store.load()
    store.use(tmp_path / "b.db")  # a new, empty file: migrated, not the old one replaced
    assert store.load() == {} and store.path.name == "b.db"
    store.use(copy)
    assert set(store.load()) == set(before)


def test_a_lock_mlplane_did_not_write_still_has_an_id_and_stays_one_line() -> None:
    info = LockInfo.from_body(b'{"who": "x\\ny", "pid": "nope", "stacks": 3}', 42)
    assert (info.id, info.who, info.pid, info.stacks) == ("42", "x\\ny", 0, ())
    assert "\n" not in info.describe() and "age unknown" in info.describe()
    ours = LockInfo(
        "id1", "user:a@b.c", "mlplane x", "h", 7, "2024-01-01T00:00:00Z", "1", "gs://b/o"
    )
    assert LockInfo.from_body(ours.body(), 5) == ours


def test_the_sync_record_round_trips() -> None:
    from mlplane.engine.team_records import Pending

    record = SyncRecord("gs://b/o", 7, "work-1.db", Pending("l", 7, "work-2.db", "md5=="), ("w",))
    assert SyncRecord.from_json(record.to_json()) == record


def test_the_storage_endpoint_follows_gcloud_then_the_client_libraries() -> None:
    assert storage_base({}) == "https://storage.googleapis.com"
    assert storage_base({"STORAGE_EMULATOR_HOST": "localhost:9023"}) == "http://localhost:9023"
    env = {
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": "https://eu.example/storage/v1/",
        "STORAGE_EMULATOR_HOST": "http://127.0.0.1:1",
    }
    assert storage_base(env) == "https://eu.example"


def test_errors_are_mapped_at_the_boundary(tmp_path: Path) -> None:
    client = CloudStorageObjects("b", StaticToken("t", "test"), base="http://127.0.0.1:9")
    with pytest.raises(PermissionDenied, match=r"PROCESS\.write-state"):
        client._check(403, {"error": {"message": "no storage.objects.create"}}, "o")
    with pytest.raises(ProviderUnavailable):
        client._check(503, {"error": {"message": "later"}}, "o")
    with pytest.raises(PermanentError, match="answered 400"):
        client._check(400, "bad", "o")
    with pytest.raises(ProviderUnavailable, match="got no answer"):  # nothing listens on :9
        client.stat("o")
