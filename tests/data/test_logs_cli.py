"""`mlplane logs RESOURCE`: --since, --severity, --format, a bounded -f, who may read."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from mlplane.cli.main import main
from mlplane.data.logs import LocalLogStore, LogEntry, LogWriter, MonitoredResource, Severity
from mlplane.data.logs.entry import log_name

RES = MonitoredResource("train-s", "1000000000000000001", "us-central1-a", "acme-ml")
HOUR = 3600 * 10**9


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GCE_METADATA_HOST", "MLPLANE_INSTANCE_NAME", "MLPLANE_PROJECT", "MLPLANE_USER"):
        monkeypatch.delenv(var, raising=False)


def put(project_file: Path, ns: int, sev: Severity, text: str) -> None:
    entry = LogEntry(log_name("acme-ml", "cos_containers"), RES, ns, sev, f"id-{ns}", text)
    line = json.dumps(entry.to_json()) + "\n"
    LocalLogStore.for_project(project_file).append("train-s", "cos_containers", line.encode())


@pytest.fixture
def history(project_file: Path) -> Path:
    now = time.time_ns()
    put(project_file, now - 3 * HOUR, Severity.INFO, "three hours ago")
    put(project_file, now - HOUR // 2, Severity.ERROR, "half an hour ago")
    put(project_file, now - 60 * 10**9, Severity.DEBUG, "a minute ago")
    return project_file


def logs(project_file: Path, *args: str) -> int:
    return main(["-f", str(project_file), "logs", *args])


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [ln.split(maxsplit=2)[2] for ln in capsys.readouterr().out.splitlines()]


def test_all_entries_oldest_first(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs(history, "train-s") == 0
    assert lines(capsys) == ["three hours ago", "half an hour ago", "a minute ago"]


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("2h", ["half an hour ago", "a minute ago"]),
        ("10m", ["a minute ago"]),
        ("1d", ["three hours ago", "half an hour ago", "a minute ago"]),
        ("2099-01-01T00:00:00Z", []),
        ("2000-01-01T00:00:00+02:00", ["three hours ago", "half an hour ago", "a minute ago"]),
    ],
)
def test_since(
    history: Path, capsys: pytest.CaptureFixture[str], since: str, expected: list[str]
) -> None:
    assert logs(history, "train-s", "--since", since) == 0
    assert lines(capsys) == expected


def test_since_rejects_nonsense(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs(history, "train-s", "--since", "last week") == 2
    assert "--since" in capsys.readouterr().err


def test_severity_and_json(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs(history, "train-s", "--severity", "info", "--format", "json") == 0
    got = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [(d["severity"], d["textPayload"]) for d in got] == [
        ("INFO", "three hours ago"),
        ("ERROR", "half an hour ago"),
    ]
    assert all(d["resource"]["type"] == "gce_instance" for d in got)


def test_unknown_resource_prints_nothing(
    project_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(project_file, time.time_ns(), Severity.INFO, "x")
    assert logs(project_file, "train-none") == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "no logs for instance 'train-none' (instances with logs: train-s)" in err


@pytest.mark.parametrize("who", ["alice@acme.com", "bob@acme.com"])
def test_team_members_may_read(history: Path, who: str) -> None:
    assert logs(history, "train-s", "--as", who) == 0


@pytest.mark.parametrize("who", ["training", "mallory@example.com"])
def test_others_may_not_read(history: Path, capsys: pytest.CaptureFixture[str], who: str) -> None:
    assert logs(history, "train-s", "--as", who) == 3
    assert "only the team's members read logs" in capsys.readouterr().err


def test_bounded_follow_prints_new_entries(
    project_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(project_file, time.time_ns(), Severity.INFO, "before")
    codes: list[int] = []
    t = threading.Thread(
        target=lambda: codes.append(logs(project_file, "train-s", "-f", "--follow-seconds", "1.5"))
    )
    t.start()
    time.sleep(0.4)
    with LogWriter(RES, project_file=project_file, principal="training") as w:
        w.write("during", "WARNING")
    t.join(timeout=10)
    assert codes == [0]
    assert lines(capsys) == ["before", "during"]


def test_without_a_resource_it_lists_the_instances_with_logs(
    history: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(history, time.time_ns(), Severity.INFO, "x")
    assert logs(history) == 0
    assert capsys.readouterr().out.split() == ["train-s"]
