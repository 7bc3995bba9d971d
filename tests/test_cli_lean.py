"""The everyday reads parsed without argparse (`cli.main.lean_parse`, decision 0017) mean what
argparse makes of the same command line, print the same and exit the same; anything else is
argparse's. Their start-up path imports neither argparse nor json/re nor the sqlite3 package."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplane.cli import main as cli

TOKENS = [
    "status", "serve", "list", "train", "notebook", "up", "--format", "json", "table", "xml",
    "-f", "--file", "p.toml", "--file=p.toml", "--format=json", "--format=", "-h", "--help", "--",
    "--timeout", "5", "--fo", "-fp.toml", "--impersonate-service-account", "--as", "-x", "",
]  # fmt: skip

LEAN_LINES = [
    [*file, *command, *fmt]
    for file in ([], ["-f", "p.toml"], ["--file", "p.toml"], ["--file=p.toml"], ["-f", "status"])
    for command in (["status"], ["serve", "list"], ["train", "list"], ["notebook", "list"])
    for fmt in ([], ["--format", "json"], ["--format", "table"], ["--format=json"])
]

NOT_LEAN = [
    [],
    ["status", "--help"],
    ["-h", "status"],
    ["--version"],
    ["status", "--format", "xml"],  # argparse's error, exit 2
    ["status", "--format"],
    ["status", "--format", "json", "--format", "table"],  # argparse: the last one
    ["status", "--form", "json"],  # argparse: an abbreviation
    ["status", "--timeout", "5"],
    ["serve", "list", "extra"],
    ["serve"],
    ["list"],
    ["-f", "--format", "status"],
    ["-f", "", "status"],
    ["-fp.toml", "status"],
    ["--impersonate-service-account", "ci", "status"],
    ["status", "--as", "alice"],
    ["status", "-f", "p.toml"],
    ["--", "status"],
]


def argparse_result(argv: list[str]) -> object:
    """What argparse makes of `argv`: (file, impersonate, namespace attributes), or how it
    ended (exit code; stdout and stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            parsed = cli.parse_argparse(argv)
        except SystemExit as exc:
            return ("exit", exc.code, out.getvalue(), err.getvalue())
    if isinstance(parsed, int):
        return ("exit", parsed, out.getvalue(), err.getvalue())
    file, impersonate, ns = parsed
    return (file, impersonate, vars(ns))


def lean_result(argv: list[str]) -> object:
    lean = cli.lean_parse(argv)
    if lean is None:
        return None
    file, args = lean
    return (file, None, vars(args))


@pytest.mark.parametrize("argv", LEAN_LINES, ids=" ".join)
def test_lean_lines_parse_as_argparse_parses_them(argv: list[str]) -> None:
    lean = lean_result(argv)
    assert lean is not None, "an everyday read left to argparse"
    assert lean == argparse_result(argv)


@pytest.mark.parametrize("argv", NOT_LEAN, ids=" ".join)
def test_other_lines_are_left_to_argparse(argv: list[str]) -> None:
    assert cli.lean_parse(argv) is None


def test_every_short_line_lean_takes_means_the_same_to_argparse() -> None:
    """Every command line of up to four of TOKENS: where lean_parse answers, argparse agrees."""
    taken = 0
    for n in range(5):
        for argv in itertools.product(TOKENS, repeat=n):
            lean = lean_result(list(argv))
            if lean is not None:
                taken += 1
                assert lean == argparse_result(list(argv)), argv
    assert taken >= 40  # the spellings of LEAN_LINES among them


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=8))
def test_longer_lines_lean_takes_mean_the_same_to_argparse(argv: list[str]) -> None:
    lean = lean_result(argv)
    if lean is not None:
        assert lean == argparse_result(argv)


def outcome(capsys: pytest.CaptureFixture[str], fn: object, argv: list[str]) -> object:
    capsys.readouterr()
    try:
        code = fn(argv)  # type: ignore[operator]
    except SystemExit as exc:
        code = ("exit", exc.code)
    shown = capsys.readouterr()
    return code, shown.out, shown.err


def test_without_an_agent_both_parses_print_and_exit_the_same(
    project_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same output, errors and exit codes on the lean path as through argparse: a project
    whose agent is not running, and a project file that does not exist."""
    lines = [
        ["-f", str(project_file), *command, *fmt]
        for command in (["status"], ["serve", "list"], ["train", "list"], ["notebook", "list"])
        for fmt in ([], ["--format", "json"])
    ]
    missing = str(tmp_path / "missing.toml")
    lines += [["-f", missing, "status"], ["--file", missing, "serve", "list"]]
    lines += [["-f", str(tmp_path), "status"], ["-f", str(tmp_path), "train", "list"]]
    for argv in lines:
        assert cli.lean_parse(argv) is not None
        assert outcome(capsys, cli.main, argv) == outcome(capsys, cli.main_argparse, argv), argv
    # a directory named as the project file: one line naming it, no traceback
    code, out, err = outcome(capsys, cli.main, ["-f", str(tmp_path), "status"])
    assert code == 2 and not out and err == f"error: {tmp_path}: cannot read: Is a directory\n"


HEAVY = (
    "argparse", "json", "re", "enum", "sqlite3", "datetime", "typing", "pathlib", "dataclasses",
    "http", "urllib", "email", "pydantic", "rich", "google", "tomllib", "mlplane.cli.parsing",
)  # fmt: skip


def lean_imports(project_file: Path, *command: str, env: dict[str, str] | None = None) -> str:
    """Run `mlplane -f FILE COMMAND` as the console script does; fail if it imported a HEAVY
    module. Its output."""
    code = (
        "import sys; from mlplane.cli.main import main; "
        f"rc = main(['-f', {str(project_file)!r}, *{list(command)!r}]); "
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}); "
        "print('HEAVY', bad) if bad else None; sys.exit(rc or (1 if bad else 0))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], env=env or dict(os.environ), capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return shown.stdout


def test_lean_reads_import_no_heavy_module(project_file: Path) -> None:
    """Without an agent (with one: tests/workflows/test_cli_lean_agent.py). The tables only:
    `--format json` writes with the json package."""
    subprocess.run(  # the compiled policy's cache, as any first command builds it
        [sys.executable, "-m", "mlplane", "-f", str(project_file), "status"],
        capture_output=True,
        check=True,
    )
    assert "local agent NOT running" in lean_imports(project_file, "status")
    assert "no revisions deployed" in lean_imports(project_file, "serve", "list")
