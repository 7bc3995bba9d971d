"""With the local agent running, the everyday reads parsed without argparse (decision 0017) print
and exit as through argparse, and ask the agent without argparse, json/re or the sqlite3 package
(the path `python bench/bench_startup.py` times)."""

from __future__ import annotations

import os

import pytest

from mlplane.cli import main as cli
from tests.test_cli_lean import lean_imports, outcome
from tests.workflows.conftest import ALICE, LocalProject

COMMANDS = (["status"], ["serve", "list"], ["train", "list"], ["notebook", "list"])


def test_lean_and_argparse_print_the_same(
    local_project: LocalProject, capsys: pytest.CaptureFixture[str]
) -> None:
    project_file = str(local_project.root / "mlplane.toml")
    for command in COMMANDS:
        for fmt in ([], ["--format", "json"], ["--format=table"]):
            argv = ["-f", project_file, *command, *fmt]
            assert cli.lean_parse(argv) is not None
            lean = outcome(capsys, cli.main, argv)
            assert lean == outcome(capsys, cli.main_argparse, argv), argv
            assert lean[0] == 0 and not lean[2], lean


def test_lean_reads_ask_the_agent_without_heavy_imports(local_project: LocalProject) -> None:
    lp = local_project
    env = {**os.environ, **lp.team.env(ALICE)}
    project_file = lp.root / "mlplane.toml"
    assert "local agent running" in lean_imports(project_file, "status", env=env)
    assert "no revisions deployed" in lean_imports(project_file, "serve", "list", env=env)
    assert "no training VMs" in lean_imports(project_file, "train", "list", env=env)
    assert "no notebooks" in lean_imports(project_file, "notebook", "list", env=env)
