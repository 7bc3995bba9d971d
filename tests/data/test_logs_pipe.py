"""Pipe mode: a command's stdout and stderr lines become entries; its exit status is ours;
nothing of the environment is logged by the pipe itself. The pipe runs inside workloads: here
as a process holding a token of `training-adhoc` (the account of users' remote training VMs)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlplane.data.logs import LocalLogStore, LogQuery, Severity, read_entries
from tests.harness import Team
from tests.teams import ALICE, process_env, team_fixture, wipe

WORKLOAD = "training-adhoc"

team = team_fixture()


@pytest.fixture
def project_file(team: Team) -> Path:
    """The team's project, its log store emptied."""
    return wipe(team.project_file)


def pipe(
    team: Team, *cmd: str, who: str | None = WORKLOAD, tee: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """The pipe as a process acting as `who` (None: the signed-in user, as on a laptop)."""
    argv = [sys.executable, "-m", "mlplane.data.logs.pipe", "--resource", "train-p"]
    argv += ["--project", str(team.project_file), *(["--tee"] if tee else []), "--", *cmd]
    run_env = process_env(team, who, **env)
    return subprocess.run(argv, env=run_env, capture_output=True, text=True, timeout=30)


def entries(project_file: Path) -> list[tuple[str, Severity, str]]:
    got = read_entries(LocalLogStore.for_project(project_file), LogQuery("train-p"))
    return [(e.labels.get("stream", ""), e.severity, e.message) for e in got]


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_status_is_propagated(team: Team, project_file: Path, code: int) -> None:
    assert pipe(team, "sh", "-c", f"exit {code}").returncode == code
    last = entries(project_file)[-1]
    assert last == (
        "mlplane-pipe",
        Severity.INFO if code == 0 else Severity.ERROR,
        f"process exited with status {code}",
    )


def test_death_by_signal_is_128_plus_the_signal(team: Team, project_file: Path) -> None:
    assert pipe(team, "sh", "-c", "kill -TERM $$").returncode == 128 + signal.SIGTERM


def test_both_streams_are_captured(team: Team, project_file: Path) -> None:
    script = "echo out1; echo err1 >&2; echo out2; printf 'no newline'; printf 'tail' >&2"
    done = pipe(team, "sh", "-c", script)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    got = entries(project_file)
    out = [m for s, sev, m in got if s == "stdout" and sev is Severity.INFO]
    err = [m for s, sev, m in got if s == "stderr" and sev is Severity.ERROR]
    assert out == ["out1", "out2", "no newline"]
    assert err == ["err1", "tail"]


def test_many_lines_arrive_whole_and_in_order(team: Team, project_file: Path) -> None:
    code = "import sys\nfor i in range(20000): print(f'line {i}')"
    assert pipe(team, sys.executable, "-c", code).returncode == 0
    out = [m for s, _, m in entries(project_file) if s == "stdout"]
    assert out == [f"line {i}" for i in range(20000)]


def test_the_pipe_logs_nothing_of_the_environment(team: Team, project_file: Path) -> None:
    secret = "sk-live-0123456789abcdef"
    done = pipe(team, "sh", "-c", "echo working; exit 3", OPENAI_API_KEY=secret)
    assert done.returncode == 3
    blob = b"".join(p.read_bytes() for p in (project_file.parent / ".mlplane").rglob("*.jsonl"))
    assert b"working" in blob
    assert secret.encode() not in blob and b"OPENAI_API_KEY" not in blob
    assert secret not in done.stdout + done.stderr
    token = team.token_file(WORKLOAD).read_text()  # the workload's credential is not logged
    assert token.encode() not in blob and b"CLOUDSDK_AUTH_ACCESS_TOKEN_FILE" not in blob


@pytest.mark.parametrize("who", [ALICE, None], ids=["user-credential", "signed-in-user"])
def test_a_user_is_denied_and_the_command_does_not_run(
    team: Team, project_file: Path, tmp_path: Path, who: str | None
) -> None:
    marker = tmp_path / "ran"
    done = pipe(team, "touch", str(marker), who=who)
    assert done.returncode == 3
    assert f"DENY user:{ALICE} logging.logEntries.create" in done.stderr
    assert "Sanctioned path: 'training.write-logs'" in done.stderr
    assert not marker.exists()
    assert entries(project_file) == []


def test_no_argument_names_an_identity(team: Team, project_file: Path, tmp_path: Path) -> None:
    """`--as` is gone: the pipe refuses it (usage error) and does not run the command."""
    marker = tmp_path / "ran"
    argv = [sys.executable, "-m", "mlplane.data.logs.pipe", "--resource", "train-p"]
    argv += ["--project", str(project_file), "--as", "training", "--", "touch", str(marker)]
    done = subprocess.run(
        argv, env=process_env(team, ALICE), capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "unrecognized arguments: --as" in done.stderr
    assert not marker.exists()
    assert entries(project_file) == []


def test_a_missing_command_exits_127(team: Team, project_file: Path) -> None:
    done = pipe(team, "/nonexistent/cmd")
    assert done.returncode == 127 and "cannot run /nonexistent/cmd" in done.stderr


def test_tee_also_copies_the_output(team: Team, project_file: Path) -> None:
    done = pipe(team, "sh", "-c", "echo out; echo err >&2", tee=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")
    # Each stream's lines, in that stream's order; the two streams are read by two threads, so
    # how they interleave with each other is not guaranteed (and not asserted).
    got = entries(project_file)
    assert [m for s, _, m in got if s == "stdout"] == ["out"]
    assert [m for s, _, m in got if s == "stderr"] == ["err"]


def test_json_lines_become_structured_entries(team: Team, project_file: Path) -> None:
    script = (
        'echo \'{"message": "loss", "loss": 0.5, "severity": "warning"}\'; echo plain; '
        'echo \'{"message": "odd", "severity": "LOUD"}\'; echo \'{"broken": \'; '
        'echo \'{"message": "bad"}\' >&2'
    )
    assert pipe(team, "sh", "-c", script).returncode == 0
    got = read_entries(LocalLogStore.for_project(project_file), LogQuery("train-p"))
    rows = {
        stream: [
            (e.severity, e.text_payload, e.json_payload)
            for e in got
            if e.labels.get("stream") == stream
        ]
        for stream in ("stdout", "stderr")
    }
    assert rows["stdout"] == [
        (Severity.WARNING, None, {"message": "loss", "loss": 0.5}),
        (Severity.INFO, "plain", None),
        (Severity.INFO, None, {"message": "odd", "severity": "LOUD"}),
        (Severity.INFO, '{"broken": ', None),
    ]
    assert rows["stderr"] == [(Severity.ERROR, None, {"message": "bad"})]


def test_progress_bars_and_crlf_split_into_lines(team: Team, project_file: Path) -> None:
    script = (
        "import sys, time\n"
        "for i in range(3):\n"
        "    sys.stderr.write(f'\\r{i * 50}%'); sys.stderr.flush(); time.sleep(0.1)\n"
        "sys.stderr.write('\\n'); sys.stdout.write('a\\r\\nb\\r'); sys.stdout.flush()\n"
        "time.sleep(0.1); sys.stdout.write('\\nc\\n')\n"
    )
    assert pipe(team, sys.executable, "-c", script).returncode == 0
    got = entries(project_file)
    assert [m for s, _, m in got if s == "stderr"] == ["0%", "50%", "100%"]
    assert [m for s, _, m in got if s == "stdout"] == ["a", "b", "c"]


def test_a_line_without_end_is_cut(team: Team, project_file: Path) -> None:
    code = "import sys; sys.stdout.write('x' * 600_000)"
    assert pipe(team, sys.executable, "-c", code).returncode == 0
    out = [m for s, _, m in entries(project_file) if s == "stdout"]
    assert "".join(out) == "x" * 600_000
    assert [len(m) for m in out] == [256 * 1024, 256 * 1024, 600_000 - 512 * 1024]
