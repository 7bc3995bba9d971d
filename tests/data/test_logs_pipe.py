"""Pipe mode: a command's stdout and stderr lines become entries; its exit status is ours;
nothing of the environment is logged by the pipe itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlplane.data.logs import LocalLogStore, LogQuery, Severity, read_entries


def pipe(
    project_file: Path, *cmd: str, who: str = "training", tee: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLANE_", "GCE_META"))}
    argv = [sys.executable, "-m", "mlplane.data.logs.pipe", "--resource", "train-p"]
    argv += ["--project", str(project_file), "--as", who, *(["--tee"] if tee else []), "--"]
    argv += cmd
    return subprocess.run(argv, env=base | env, capture_output=True, text=True, timeout=30)


def entries(project_file: Path) -> list[tuple[str, Severity, str]]:
    got = read_entries(LocalLogStore.for_project(project_file), LogQuery("train-p"))
    return [(e.labels.get("stream", ""), e.severity, e.message) for e in got]


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_status_is_propagated(project_file: Path, code: int) -> None:
    assert pipe(project_file, "sh", "-c", f"exit {code}").returncode == code
    last = entries(project_file)[-1]
    assert last == (
        "mlplane-pipe",
        Severity.INFO if code == 0 else Severity.ERROR,
        f"process exited with status {code}",
    )


def test_death_by_signal_is_128_plus_the_signal(project_file: Path) -> None:
    assert pipe(project_file, "sh", "-c", "kill -TERM $$").returncode == 128 + signal.SIGTERM


def test_both_streams_are_captured(project_file: Path) -> None:
    script = "echo out1; echo err1 >&2; echo out2; printf 'no newline'; printf 'tail' >&2"
    done = pipe(project_file, "sh", "-c", script)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    got = entries(project_file)
    out = [m for s, sev, m in got if s == "stdout" and sev is Severity.INFO]
    err = [m for s, sev, m in got if s == "stderr" and sev is Severity.ERROR]
    assert out == ["out1", "out2", "no newline"]
    assert err == ["err1", "tail"]


def test_many_lines_arrive_whole_and_in_order(project_file: Path) -> None:
    code = "import sys\nfor i in range(20000): print(f'line {i}')"
    assert pipe(project_file, sys.executable, "-c", code).returncode == 0
    out = [m for s, _, m in entries(project_file) if s == "stdout"]
    assert out == [f"line {i}" for i in range(20000)]


def test_the_pipe_logs_nothing_of_the_environment(project_file: Path) -> None:
    secret = "sk-live-0123456789abcdef"
    done = pipe(project_file, "sh", "-c", "echo working; exit 3", OPENAI_API_KEY=secret)
    assert done.returncode == 3
    blob = b"".join(p.read_bytes() for p in (project_file.parent / ".mlplane").rglob("*.jsonl"))
    assert b"working" in blob
    assert secret.encode() not in blob and b"OPENAI_API_KEY" not in blob
    assert secret not in done.stdout + done.stderr


def test_a_user_is_denied_and_the_command_does_not_run(project_file: Path) -> None:
    marker = project_file.parent / "ran"
    done = pipe(project_file, "touch", str(marker), who="alice@acme.com")
    assert done.returncode == 3
    assert "Sanctioned path: 'training.write-logs'" in done.stderr
    assert not marker.exists()


def test_a_missing_command_exits_127(project_file: Path) -> None:
    done = pipe(project_file, "/nonexistent/cmd")
    assert done.returncode == 127 and "cannot run /nonexistent/cmd" in done.stderr


def test_tee_also_copies_the_output(project_file: Path) -> None:
    done = pipe(project_file, "sh", "-c", "echo out; echo err >&2", tee=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")
    # Each stream's lines, in that stream's order; the two streams are read by two threads, so
    # how they interleave with each other is not guaranteed (and not asserted).
    got = entries(project_file)
    assert [m for s, _, m in got if s == "stdout"] == ["out"]
    assert [m for s, _, m in got if s == "stderr"] == ["err"]


def test_json_lines_become_structured_entries(project_file: Path) -> None:
    script = (
        'echo \'{"message": "loss", "loss": 0.5, "severity": "warning"}\'; echo plain; '
        'echo \'{"message": "odd", "severity": "LOUD"}\'; echo \'{"broken": \'; '
        'echo \'{"message": "bad"}\' >&2'
    )
    assert pipe(project_file, "sh", "-c", script).returncode == 0
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


def test_progress_bars_and_crlf_split_into_lines(project_file: Path) -> None:
    script = (
        "import sys, time\n"
        "for i in range(3):\n"
        "    sys.stderr.write(f'\\r{i * 50}%'); sys.stderr.flush(); time.sleep(0.1)\n"
        "sys.stderr.write('\\n'); sys.stdout.write('a\\r\\nb\\r'); sys.stdout.flush()\n"
        "time.sleep(0.1); sys.stdout.write('\\nc\\n')\n"
    )
    assert pipe(project_file, sys.executable, "-c", script).returncode == 0
    got = entries(project_file)
    assert [m for s, _, m in got if s == "stderr"] == ["0%", "50%", "100%"]
    assert [m for s, _, m in got if s == "stdout"] == ["a", "b", "c"]


def test_a_line_without_end_is_cut(project_file: Path) -> None:
    code = "import sys; sys.stdout.write('x' * 600_000)"
    assert pipe(project_file, sys.executable, "-c", code).returncode == 0
    out = [m for s, _, m in entries(project_file) if s == "stdout"]
    assert "".join(out) == "x" * 600_000
    assert [len(m) for m in out] == [256 * 1024, 256 * 1024, 600_000 - 512 * 1024]
