"""`mlplane state check [--repair]`: the engine's state database (`.mlplane/state.db` beside the
project file; with `provider = "gcp"`, this machine's working copy of the team state): integrity,
schema version, open intents, file modes, and the safe repairs. `mlplane state show` and
`mlplane state unlock LOCK_ID`: where the team state is and who holds its lock; breaking a
lock whose command is no longer running (decision 1500).

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
        help=f"the state database (default: {STATE_DIR}/{STATE_DB} beside the project file; "
        "on gcp, this machine's working copy of the team state)",
    )
    p.set_defaults(run=run_check)
    p = subs.add_parser(
        "show", help="provider gcp: the team state's object, its generation, and its lock"
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(run=run_show)
    p = subs.add_parser(
        "unlock",
        help="provider gcp: break the team state's lock LOCK_ID (only if its command is no "
        "longer running)",
    )
    p.add_argument("lock_id", metavar="LOCK_ID", help="the id the lock's holder shows")
    p.set_defaults(run=run_unlock)


def _project_file(ctx: Context) -> str:
    import os

    project_file = ctx.project_file
    if not os.path.isfile(project_file):
        from mlplane.errors import ConfigError

        raise ConfigError(
            project_file, "", "no such file: run in a project, or give -f FILE or --db PATH"
        )
    return project_file


def run_check(ctx: Context, args: argparse.Namespace) -> int:
    import os

    from mlplane.engine.statecheck import check_state, repair_state

    path = args.db
    if path is None:
        project_file = _project_file(ctx)
        path = os.path.join(os.path.dirname(os.path.abspath(project_file)), STATE_DIR, STATE_DB)
        from mlplane.errors import MlplaneError
        from mlplane.iam.compiled import policy_for

        try:  # a recovery tool: a project file that does not load leaves the local default
            provider = policy_for(project_file).provider
        except MlplaneError:
            provider = "local"
        if provider == "gcp":
            from mlplane.workflows.team_state import working_copy

            copy = working_copy(project_file)
            if copy is None:
                print("no working copy of the team state on this machine yet (`mlplane state "
                      "show` for the team state itself)")  # fmt: skip
                return 0
            path = str(copy)
    report = repair_state(path) if args.repair else check_state(path)
    for line in report.summary():
        print(line)
    for problem in report.problems:
        print(f"error: {problem.line()}", file=sys.stderr)
    return 0 if report.ok else 1


def run_show(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.team_state import show

    info = show(ctx.session())
    lock = info.lock
    if args.format == "json":
        from mlplane.cli.context import emit_json

        emit_json(
            {
                "object": info.object,
                "generation": info.generation,
                "size": info.size,
                "updated": info.updated,
                "lock": None
                if lock is None
                else {
                    "id": lock.id,
                    "who": lock.who,
                    "operation": lock.operation,
                    "host": lock.host,
                    "pid": lock.pid,
                    "created": lock.created,
                    "version": lock.version,
                    "stacks": list(lock.stacks),
                },
                "working_copy": str(info.working) if info.working else None,
                "not_uploaded": str(info.pending) if info.pending else None,
                "kept_aside": [str(p) for p in info.unsent],
            }
        )
        return 0
    if info.generation:
        print(f"team state  {info.object}: generation {info.generation}, {info.size} bytes, "
              f"updated {info.updated}")  # fmt: skip
    else:
        print(f"team state  {info.object}: none yet (the first apply writes it)")
    print(f"lock        {lock.describe() if lock else 'none'}")
    if info.working:
        print(f"here        working copy {info.working}")
    if info.pending:
        print(f"here        not uploaded: {info.pending} (an interrupted apply; the next apply "
              "here uploads it if nobody has written the state since)")  # fmt: skip
    for kept in info.unsent:
        print(f"here        kept aside: {kept} (not uploaded; the team state moved on)")
    return 0


def run_unlock(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.team_state import unlock

    held = unlock(ctx.session(), args.lock_id)
    print(f"broke the lock {held.id}: it said {held.describe()}")
    return 0
