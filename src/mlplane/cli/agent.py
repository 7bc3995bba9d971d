"""`mlplane up`, `mlplane down`, `mlplane status`.

One module for the three commands; `configure` tells them apart by the parser's prog
(`mlplane up`, ...), which `cli.main` sets from the command name.
"""

from __future__ import annotations

from mlplane.cli.context import Context, emit_json

TYPE_CHECKING = False  # as typing's, without importing typing (`status`'s start-up path)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from mlplane.workflows.status import ProjectStatus


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    command = parser.prog.split()[-1]
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait (default: %(default)s)"
    )
    if command == "up":
        parser.description = (
            "start the project's local agent in the background (idempotent): Google's APIs "
            "(Compute, Service Management, Cloud Build, ...) on 127.0.0.1"
        )
        parser.set_defaults(run=run_up)
    elif command == "down":
        parser.description = "stop the local agent and every process it supervises"
        parser.set_defaults(run=run_down)
    else:
        parser.description = (
            "the project's recorded resources (lifecycle, owning stack) and, locally, the "
            "processes the agent runs for them"
        )
        parser.add_argument("--format", dest="fmt", choices=("table", "json"), default="table")
        parser.set_defaults(run=run_status)


def run_up(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows import compose

    result = compose.agent_up(ctx.project_path, timeout=args.timeout)
    info = result.agent.info
    verb = "started" if result.started else "already running"
    print(
        f"agent {verb}: pid {info.pid}, Google APIs at {info.base_url}, "
        f"state {result.agent.paths.root}"
    )
    print('sign in: mlplane auth login | point gcloud at it: eval "$(mlplane env gcloud)"')
    return 0


def run_down(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows import compose

    result = compose.agent_down(ctx.project_path, timeout=args.timeout)
    if result.pid is None:
        print("no agent running")
    else:
        how = "killed (it ignored SIGTERM)" if result.forced else "stopped"
        print(f"agent {how}: pid {result.pid}")
    if result.leftovers:
        print(f"killed {result.leftovers} processes left by a crashed agent")
    return 0


def run_status(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.status import project_status

    status = project_status(ctx.project_file)
    if args.fmt == "json":
        emit_json(status.to_json())
        return 0
    render_status(status)
    return 0


def render_status(status: ProjectStatus) -> None:
    from mlplane.cli.table import format_table

    print(status.summary)
    if status.resources:
        print()
        print(
            format_table(
                ("kind", "name", "lifecycle", "stack", "detail"),
                [(r.kind, r.name, r.lifecycle, r.stack, r.detail) for r in status.resources],
            )
        )
    if status.processes:
        print("\nProcesses (local agent)")
        rows = [
            (
                v.group,
                v.name,
                _str(v.pid),
                _str(v.port),
                v.status + (f" ({v.restarts} restarts)" if v.restarts else ""),
                v.health,
                v.service_account.split("@")[0],
            )
            for v in status.processes
        ]
        headers = ("group", "instance", "pid", "port", "status", "health", "runs as")
        print(format_table(headers, rows))
    for note in status.notes:
        print(note)


def _str(value: int | None) -> str:
    return "-" if value is None else str(value)
