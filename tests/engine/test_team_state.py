"""The team state (provider gcp, decisions 1500-1501) against gcp-storage-emulator behind the
precondition shim: two machines (project directories) apply through engines over one shared
FakeCloud. Interleavings are explicit: the second machine acts from inside the first one's
apply (its journal hook), in the same thread; crashes are child processes that exit at a named
point."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gcp_storage_emulator.server", reason="gcp-storage-emulator is not installed")

from fake_provider import (
    FakeClock,
    FakeCloud,
    bootstrap_state,
    bundle,
    deploy_state,
)
from gcs_support import BUCKET, HERE, PREFIX, Gcs, Machine, gcs_with_preconditions, machine

from mlplane.engine.team_records import StateConflict, StateGone, StateLocked
from mlplane.errors import ConfigError
from mlplane.model.compute import FRONTEND_STACK
from mlplane.providers.errors import ProviderUnavailable

STATE = PREFIX + "state.db"
LOCK = PREFIX + "state.lock"


@pytest.fixture(scope="module")
def gcs_server() -> Iterator[Gcs]:
    with gcs_with_preconditions() as server:
        yield server


@pytest.fixture
def gcs(gcs_server: Gcs) -> Gcs:
    gcs_server.wipe()
    return gcs_server


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[FakeCloud]:
    c = FakeCloud(tmp_path / "cloud.db", polls_to_done=1)
    yield c
    c.close()


def generation(m: Machine, name: str = STATE) -> int:
    meta = m.store.inner.stat(name)
    return meta.generation if meta else 0


def stacks(records: set[tuple[str, str, str]]) -> set[str]:
    return {stack for _, _, stack in records}


def first_event(action: Any) -> Any:
    """A journal hook that runs `action` once, at the first journal event of an apply."""
    done: list[bool] = []

    def hook(event: Any) -> None:
        if not done:
            done.append(True)
            action()

    return hook


def test_an_apply_creates_the_state_object_and_another_machine_reads_it(
    gcs: Gcs, cloud: FakeCloud, tmp_path: Path
) -> None:
    a = machine(tmp_path, "a", gcs.url, cloud)
    a.apply(bootstrap_state())
    assert generation(a) > 0 and generation(a, LOCK) == 0  # uploaded, unlocked
    b = machine(tmp_path, "b", gcs.url, cloud)
    assert b.records() == a.records() and stacks(b.records()) == {FRONTEND_STACK}
    assert {(op, name) for op, name in a.store.writes()} == {
        ("write", LOCK),
        ("write", STATE),
        ("delete", LOCK),
    }
    assert b.store.writes() == []  # reading takes no lock
    assert b.engine.plan(bootstrap_state()).empty  # a preview plans from the team state
    assert b.store.writes() == []
    a.apply(bootstrap_state())  # nothing to change: nothing uploaded
    assert a.store.writes().count(("write", STATE)) == 1


def test_two_machines_race_for_the_lock(gcs: Gcs, cloud: FakeCloud, tmp_path: Path) -> None:
    b = machine(tmp_path, "b", gcs.url, cloud, who="user:bob@acme.com")
    refused: list[StateLocked] = []

    def b_tries() -> None:
        with pytest.raises(StateLocked) as info:
            b.apply(deploy_state("sentiment", "r1"))
        refused.append(info.value)

    a = machine(tmp_path, "a", gcs.url, cloud, on_event=first_event(b_tries))
    a.apply(bootstrap_state())
    [locked] = refused
    message = str(locked)
    holder = locked.lock
    assert holder.who == "serviceAccount:serving@test-proj.iam.gserviceaccount.com"
    assert holder.operation == "mlplane test on a" and holder.pid == os.getpid()
    assert holder.stacks == (FRONTEND_STACK,)
    for part in (holder.who, "mlplane test on a", f"mlplane state unlock {holder.id}"):
        assert part in message
    assert [w for w in b.store.writes() if w[1] == STATE] == []  # b wrote nothing
    assert "\n" not in message
    # a is done: b applies now, from a's state, and nobody's update is lost
    b.apply(deploy_state("sentiment", "r1"))
    assert stacks(b.records()) == {FRONTEND_STACK, bundle().stack}
    assert stacks(machine(tmp_path, "c", gcs.url, cloud).records()) == stacks(b.records())


def test_a_stale_generation_on_upload_is_an_error_and_loses_nothing(
    gcs: Gcs, cloud: FakeCloud, tmp_path: Path
) -> None:
    b = machine(tmp_path, "b", gcs.url, cloud, who="user:bob@acme.com")
    b.apply(bootstrap_state())

    def b_breaks_the_lock_and_writes() -> None:
        held = b.team.current_lock()
        assert held is not None
        assert b.team.unlock(held.id) == held
        b.apply(deploy_state("other", "r1"))

    a = machine(tmp_path, "a", gcs.url, cloud, on_event=first_event(b_breaks_the_lock_and_writes))
    with pytest.raises(StateConflict) as info:
        a.apply(deploy_state("sentiment", "r1"))
    after_b = generation(b)
    assert stacks(b.records()) == {FRONTEND_STACK, bundle("other", "r1").stack}
    assert any(r.startswith("POST /upload/") for r in gcs.rejected)  # the 412 itself
    # nothing lost: a's copy is kept, and says what a created
    kept = Path(str(info.value).split("kept in ")[1].split(".db")[0] + ".db")
    with sqlite3.connect(kept) as conn:
        mine = {s for (s,) in conn.execute("SELECT DISTINCT stack FROM resources")}
    assert bundle().stack in mine
    assert any("was broken while it ran" in n for n in a.notes)
    assert a.team.info().unsent == (kept,)
    # a's next apply starts from b's generation and adopts what it had created
    a.apply(deploy_state("sentiment", "r1"))
    assert generation(a) > after_b
    assert stacks(a.records()) == {FRONTEND_STACK, bundle("other").stack, bundle().stack}
    creates = [(k, n) for k, n, v in cloud.effects() if v == "create"]
    assert len(creates) == len(set(creates))  # adopted, not created twice


def run_child(root: Path, name: str, url: str, scenario: str, die_at: str) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), str(HERE)])}
    args = [sys.executable, str(HERE / "gcs_support.py"), str(root), name, url, scenario, die_at]
    return subprocess.run(args, env=env, timeout=120).returncode


def test_a_crash_between_upload_and_unlock_leaves_a_lock_that_names_its_holder(
    gcs: Gcs, cloud: FakeCloud, tmp_path: Path
) -> None:
    assert run_child(tmp_path, "a", gcs.url, "bootstrap", "uploaded") == 137
    b = machine(tmp_path, "b", gcs.url, cloud, who="user:bob@acme.com")
    assert stacks(b.records()) == {FRONTEND_STACK}  # the upload happened
    with pytest.raises(StateLocked) as info:
        b.apply(deploy_state())
    holder = info.value.lock
    assert holder.operation == "mlplane test on a" and holder.pid not in (0, os.getpid())
    assert f"mlplane state unlock {holder.id}" in str(info.value)
    with pytest.raises(ConfigError, match="not the lock's id: the team state is locked by"):
        b.team.unlock("0123")
    assert b.team.unlock(holder.id).id == holder.id
    b.apply(deploy_state())
    assert stacks(b.records()) == {FRONTEND_STACK, bundle().stack}
    # back on machine a: it died after its upload landed, before it could note that; b has
    # written since, so a keeps its copy aside, says so, and starts from b's generation
    a = machine(tmp_path, "a", gcs.url, cloud)
    a.apply(deploy_state("other", "r1"))
    [note] = a.notes
    assert "stopped while uploading its team state (if the upload landed" in note
    assert a.team.info().pending is None and len(a.team.info().unsent) == 1
    assert stacks(a.records()) == {FRONTEND_STACK, bundle().stack, bundle("other").stack}


def test_the_same_machine_recognises_its_own_landed_upload(
    gcs: Gcs, cloud: FakeCloud, tmp_path: Path
) -> None:
    assert run_child(tmp_path, "a", gcs.url, "bootstrap", "uploaded") == 137
    a = machine(tmp_path, "a", gcs.url, cloud)
    assert a.team.info().pending is not None  # it died before noting the upload
    held = a.team.current_lock()
    assert held is not None
    a.team.unlock(held.id)
    uploaded = generation(a)
    a.apply(bootstrap_state())  # nothing to change, nothing to resume: nothing uploaded
    assert a.notes == [] and generation(a) == uploaded
    assert a.team.info().pending is None and a.team.info().unsent == ()


def test_a_crash_mid_apply_is_resumed_by_the_next_apply_on_that_machine(
    gcs: Gcs, cloud: FakeCloud, tmp_path: Path
) -> None:
    assert run_child(tmp_path, "a", gcs.url, "bootstrap", "recorded") == 137
    a = machine(tmp_path, "a", gcs.url, cloud)
    assert generation(a) == 0  # nothing uploaded
    held = a.team.current_lock()
    assert held is not None and a.team.info().pending is not None
    a.team.unlock(held.id)
    a.apply(bootstrap_state())
    assert any(n.startswith("resuming the team state") for n in a.notes)
    recorded = {(k, n) for k, n, _ in a.records()}
    assert recorded == {(k.kind, k.name) for k in cloud.resources()}
    creates = [(k, n) for k, n, v in cloud.effects() if v == "create"]
    assert len(creates) == len(set(creates))  # the journal's intents rolled forward


def test_read_only_use_takes_no_lock_even_while_another_holds_it(
    gcs: Gcs, cloud: FakeCloud, tmp_path: Path
) -> None:
    machine(tmp_path, "a", gcs.url, cloud).apply(bootstrap_state())
    reader = machine(tmp_path, "reader", gcs.url, cloud)
    seen: list[set[tuple[str, str, str]]] = []

    def read() -> None:
        assert reader.team.current_lock() is not None  # a holds it
        seen.append(reader.records())

    a = machine(tmp_path, "a", gcs.url, cloud, on_event=first_event(read))
    a.apply(deploy_state())
    assert stacks(seen[0]) == {FRONTEND_STACK}  # the last uploaded generation
    assert reader.store.writes() == []


def test_waiting_for_a_lock_uses_the_clock_then_names_the_holder(
    gcs: Gcs, cloud: FakeCloud, tmp_path: Path
) -> None:
    clock = FakeClock()
    b = machine(tmp_path, "b", gcs.url, cloud, lock_timeout=30, clock=clock)
    refused: list[StateLocked] = []

    def b_waits() -> None:
        with pytest.raises(StateLocked) as info:
            b.apply(bootstrap_state())
        refused.append(info.value)

    machine(tmp_path, "a", gcs.url, cloud, on_event=first_event(b_waits)).apply(bootstrap_state())
    assert "(waited 30 s)" in str(refused[0])
    assert sum(clock.sleeps) == 30 and clock.sleeps[:3] == [1.0, 2.0, 4.0]


def test_a_lock_mlplane_did_not_write_is_reported_and_breakable(
    gcs: Gcs, cloud: FakeCloud, tmp_path: Path
) -> None:
    a = machine(tmp_path, "a", gcs.url, cloud)
    meta = a.store.inner.write(LOCK, b"\x00garbage", if_generation_match=0, content_type="x/y")
    with pytest.raises(StateLocked, match=f"lock id {meta.generation}"):
        a.apply(bootstrap_state())
    a.team.unlock(str(meta.generation))
    a.apply(bootstrap_state())


def test_a_state_object_deleted_after_it_was_seen_is_not_silently_restarted(
    gcs: Gcs, cloud: FakeCloud, tmp_path: Path
) -> None:
    a = machine(tmp_path, "a", gcs.url, cloud)
    a.apply(bootstrap_state())
    a.store.inner.delete(STATE, if_generation_match=generation(a))
    with pytest.raises(StateGone, match="all-versions"):
        a.apply(deploy_state())
    assert generation(a, LOCK) == 0  # the lock was released
    assert BUCKET in a.team.uri


class Flaky:
    """Passes calls on, but the first `n` writes of each named object fail as a 429 would."""

    def __init__(self, inner: Any, fail: dict[str, int]) -> None:
        self.inner, self.fail = inner, dict(fail)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write(self, name: str, data: bytes, **kw: Any) -> Any:
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            raise ProviderUnavailable(f"{name}: 429 rateLimitExceeded", delay=2.0)
        return self.inner.write(name, data, **kw)


def test_rate_limits_on_the_lock_and_the_upload_are_retried_on_the_clock(
    gcs: Gcs, cloud: FakeCloud, tmp_path: Path
) -> None:
    clock = FakeClock()
    a = machine(tmp_path, "a", gcs.url, cloud, clock=clock)
    a.team.objects = Flaky(a.store, {LOCK: 2, STATE: 2})
    a.apply(bootstrap_state())
    assert clock.sleeps == [2.0, 2.0, 2.0, 2.0] and generation(a) > 0
    a.team.objects = Flaky(a.store, {LOCK: 3})
    with pytest.raises(ProviderUnavailable, match="429"):
        a.apply(deploy_state())
    assert generation(a, LOCK) == 0


def test_an_upload_whose_answer_was_lost_is_recognised_as_ours(gcs: Gcs) -> None:
    from gcs_support import objects

    client = objects(gcs.url).inner
    real, lost = client._send, [1]

    def lossy(method: str, url: str, body: bytes | None, content_type: str | None) -> Any:
        answer = real(method, url, body, content_type)
        if method == "POST" and lost:  # it landed; the answer did not come back
            lost.pop()
            raise ProviderUnavailable("no answer")
        return answer

    client._send = lossy
    landed = client.write("x", b"ours", if_generation_match=0, content_type="text/plain")
    assert landed.generation == client.stat("x").generation
    assert client.read("x", landed.generation) == b"ours"

    def dropped(method: str, url: str, body: bytes | None, content_type: str | None) -> Any:
        if method == "POST":  # lost before it reached Cloud Storage
            raise ProviderUnavailable("no answer")
        return real(method, url, body, content_type)

    client._send = dropped
    with pytest.raises(ProviderUnavailable):
        client.write("y", b"one", if_generation_match=0, content_type="text/plain")
    assert client.stat("y") is None
