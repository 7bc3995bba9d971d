"""`mlplane logs RESOURCE`: --since, --severity, --format, a bounded -f, and who may read: the
command acts as whoever its credentials belong to (the signed-in user by default)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from mlplane.cli.main import main
from mlplane.data.logs import LocalLogStore, LogEntry, LogWriter, MonitoredResource, Severity
from mlplane.data.logs.entry import log_name
from tests.harness import Team
from tests.teams import ALICE, BOB, OUTSIDER, team_fixture, wipe

RES = MonitoredResource("train-s", "1000000000000000001", "us-central1-a", "acme-ml")
HOUR = 3600 * 10**9

team = team_fixture(users=(BOB, OUTSIDER))


@pytest.fixture
def project_file(team: Team, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The team's project, its log store emptied."""
    monkeypatch.delenv("MLPLANE_INSTANCE_NAME", raising=False)
    return wipe(team.project_file)


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


def logs(team: Team, *args: str, who: str | None = None) -> int:
    """`mlplane logs ARGS` as `who` (default: the signed-in user, alice@acme.com)."""
    with team.environment(**(team.env(who) if who else {})):
        return main(["-f", str(team.project_file), "logs", *args])


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [ln.split(maxsplit=2)[2] for ln in capsys.readouterr().out.splitlines()]


def test_all_entries_oldest_first(
    team: Team, history: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert logs(team, "train-s") == 0
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
    team: Team,
    history: Path,
    capsys: pytest.CaptureFixture[str],
    since: str,
    expected: list[str],
) -> None:
    assert logs(team, "train-s", "--since", since) == 0
    assert lines(capsys) == expected


def test_since_rejects_nonsense(
    team: Team, history: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert logs(team, "train-s", "--since", "last week") == 2
    assert "--since" in capsys.readouterr().err


def test_severity_and_json(team: Team, history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs(team, "train-s", "--severity", "info", "--format", "json") == 0
    got = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [(d["severity"], d["textPayload"]) for d in got] == [
        ("INFO", "three hours ago"),
        ("ERROR", "half an hour ago"),
    ]
    assert all(d["resource"]["type"] == "gce_instance" for d in got)


def test_unknown_resource_prints_nothing(
    team: Team, project_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(project_file, time.time_ns(), Severity.INFO, "x")
    assert logs(team, "train-none") == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "no logs for instance 'train-none' (instances with logs: train-s)" in err


@pytest.mark.parametrize("who", [ALICE, BOB])
def test_team_members_may_read(
    team: Team, history: Path, capsys: pytest.CaptureFixture[str], who: str
) -> None:
    assert logs(team, "train-s", who=who) == 0
    assert lines(capsys) == ["three hours ago", "half an hour ago", "a minute ago"]


@pytest.mark.parametrize("who", ["training", "training-adhoc"])
def test_service_accounts_may_not_read(
    team: Team, history: Path, capsys: pytest.CaptureFixture[str], who: str
) -> None:
    """A workload's token (a service account's) writes logs but does not read them."""
    assert logs(team, "train-s", who=who) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert f"DENY serviceAccount:mlplane-{who}@acme-ml.iam.gserviceaccount.com reading logs" in err
    assert "only the team's members read logs" in err


def test_an_outsider_gets_no_token(
    team: Team, history: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Signed in on this machine but not on the project's team: the token endpoint refuses,
    so nothing is read."""
    assert logs(team, "train-s", who=OUTSIDER) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{OUTSIDER} is not a member of project acme-ml's team" in err


def test_identity_variables_of_earlier_versions_are_ignored(
    team: Team, history: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MLPLANE_USER and MLPLANE_PRINCIPAL name nobody: the signed-in user still reads."""
    with team.environment(MLPLANE_USER=OUTSIDER, MLPLANE_PRINCIPAL="training"):
        assert main(["-f", str(team.project_file), "logs", "train-s"]) == 0
    assert lines(capsys) == ["three hours ago", "half an hour ago", "a minute ago"]


def test_bounded_follow_prints_new_entries(
    team: Team, project_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(project_file, time.time_ns(), Severity.INFO, "before")
    codes: list[int] = []
    with team.environment():  # os.environ is the process's: the reader's thread sees it
        t = threading.Thread(
            target=lambda: codes.append(
                main(["-f", str(project_file), "logs", "train-s", "-f", "--follow-seconds", "1.5"])
            )
        )
        t.start()
        time.sleep(0.4)
        with LogWriter(RES, project_file=project_file, principal="training") as w:
            w.write("during", "WARNING")
        t.join(timeout=10)
    assert codes == [0]
    assert lines(capsys) == ["before", "during"]


def test_without_a_resource_it_lists_the_instances_with_logs(
    team: Team, history: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(history, time.time_ns(), Severity.INFO, "x")
    assert logs(team) == 0
    assert capsys.readouterr().out.split() == ["train-s"]
