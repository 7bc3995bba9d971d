"""LogWriter: authorized as the workload's principal, batched, flushed on close; concurrent
writers in several processes lose nothing and interleave whole lines only."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlplane.data.logs import LocalLogStore, LogQuery, LogWriter, Severity, read_entries
from mlplane.errors import PermissionDenied


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GCE_METADATA_HOST", "MLPLANE_INSTANCE_NAME", "MLPLANE_PROJECT", "MLPLANE_USER"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("who", ["training", "training-adhoc"])
def test_training_service_accounts_may_write(project_file: Path, who: str) -> None:
    with LogWriter("train-1", project_file=project_file, principal=who) as w:
        w.write("epoch 1")
        w.write({"message": "loss", "loss": 0.5}, Severity.WARNING, {"epoch": "1"})
    entries = read_entries(LocalLogStore.for_project(project_file), LogQuery("train-1"))
    assert [e.message for e in entries] == ["epoch 1", "loss"]
    assert entries[1].json_payload == {"message": "loss", "loss": 0.5}
    assert entries[1].labels == {"epoch": "1"}
    assert entries[0].resource.zone == "us-central1-a"
    assert entries[0].resource.project_id == "acme-ml"
    assert entries[0].resource.instance_id.isdigit()


@pytest.mark.parametrize("who", ["alice@acme.com", "bob@acme.com", "serving-runtime"])
def test_users_and_other_processes_are_denied_with_the_sanctioned_path(
    project_file: Path, who: str
) -> None:
    with pytest.raises(PermissionDenied) as err:
        LogWriter("train-1", project_file=project_file, principal=who)
    text = str(err.value)
    assert "missing logging.logEntries.create" in text
    assert "Sanctioned path: 'training.write-logs'" in text
    assert "mlplane-training@acme-ml.iam.gserviceaccount.com" in text
    assert not (project_file.parent / ".mlplane" / "logs").exists()


def test_background_flush_without_close(project_file: Path) -> None:
    import time

    w = LogWriter("train-1", project_file=project_file, principal="training", flush_interval=0.05)
    w.write("early")
    store = LocalLogStore.for_project(project_file)
    deadline = time.monotonic() + 5
    while not read_entries(store, LogQuery("train-1")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [e.message for e in read_entries(store, LogQuery("train-1"))] == ["early"]
    w.close()
    w.close()  # idempotent


def test_flush_at_interpreter_exit(project_file: Path) -> None:
    code = f"""
        from mlplane.data.logs import LogWriter
        w = LogWriter("train-2", project_file={str(project_file)!r}, principal="training",
                      flush_interval=60)
        for i in range(500):
            w.write(f"line {{i}}")
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, timeout=30)
    entries = read_entries(LocalLogStore.for_project(project_file), LogQuery("train-2"))
    assert [e.message for e in entries] == [f"line {i}" for i in range(500)]


WRITER = """
import sys
from mlplane.data.logs import LogWriter
project, wid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pad = "x" * (5000 if wid % 2 else 10)   # long lines: well beyond PIPE_BUF
with LogWriter("train-c", project_file=project, principal="training",
               flush_interval=0.001, max_batch=7) as w:
    for i in range(n):
        w.write({"w": wid, "n": i, "pad": pad})
"""


def test_concurrent_writers_lose_nothing_and_interleave_whole_lines(project_file: Path) -> None:
    writers, n = 4, 1500
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(project_file), str(w), str(n)])
        for w in range(writers)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * writers
    path = LocalLogStore.for_project(project_file).path("train-c", "cos_containers")
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    seen: dict[int, list[int]] = {w: [] for w in range(writers)}
    ids = set()
    for line in raw.splitlines():
        d = json.loads(line)  # a torn or interleaved line would not parse
        seen[d["jsonPayload"]["w"]].append(d["jsonPayload"]["n"])
        ids.add(d["insertId"])
    assert all(seen[w] == list(range(n)) for w in range(writers))  # complete, in order
    assert len(ids) == writers * n
