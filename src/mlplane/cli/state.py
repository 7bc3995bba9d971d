"""`mlplane state check [--repair]`: the engine's state database (`.mlplane/state.db` beside the
project file): integrity, schema version, open intents, file modes, and the safe repairs.

Each problem is one line on stderr naming the file and the recovery; the exit status is 1 while
any remains. Nothing is created or migrated without `--repair`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mlplane.cli.context import Context

STATE_DIR = ".mlplane"  # the project's state directory (as Session.state_dir)
STATE_DB = "state.db"  # as mlplane.workflows.session.STATE_DB


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    subs = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", prog=parser.prog)
    p = subs.add_parser(
        "check",
        help="integrity, schema version, open intents and file modes; what --repair would do",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="make the repairs that lose nothing (modes, schema migration, closing unreadable "
        "journal rows as failed), each after a backup",
    )
    p.add_argument(
        "--db",
        metavar="PATH",
        help=f"the state database (default: {STATE_DIR}/{STATE_DB} beside the project file)",
    )
    p.set_defaults(run=run_check)


def run_check(ctx: Context, args: argparse.Namespace) -> int:
    import os

    from mlplane.engine.statecheck import check_state, repair_state

    path = args.db
    if path is None:
        project_file = ctx.project_file
        if not os.path.isfile(project_file):
            from mlplane.errors import ConfigError

            raise ConfigError(
                project_file, "", "no such file: run in a project, or give -f FILE or --db PATH"
            )
        path = os.path.join(os.path.dirname(os.path.abspath(project_file)), STATE_DIR, STATE_DB)
    report = repair_state(path) if args.repair else check_state(path)
    for line in report.summary():
        print(line)
    for problem in report.problems:
        print(f"error: {problem.line()}", file=sys.stderr)
    return 0 if report.ok else 1
