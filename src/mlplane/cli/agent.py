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

    from mlplane.workflows.preflight import PreflightReport
    from mlplane.workflows.session import Session
    from mlplane.workflows.status import ProjectStatus

NOT_READY = 4  # `mlplane up` on gcp: a check failed (as `iam audit` exits on findings)


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    command = parser.prog.split()[-1]
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait (default: %(default)s)"
    )
    if command == "up":
        parser.description = (
            "provider local: start the project's local agent in the background (idempotent): "
            "Google's APIs (Compute, Service Management, Cloud Build, ...) on 127.0.0.1. "
            "provider gcp: check the Google Cloud project (APIs, the foundation `mlplane export` "
            "creates, your permissions) and name what is missing; nothing is created or changed "
            f"(exit {NOT_READY} when a check fails)"
        )
        parser.add_argument("--format", dest="fmt", choices=("text", "json"), default="text")
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

    session = ctx.session()
    if session.authz.policy.provider == "gcp":  # the compiled policy's: no model loaded here
        return run_preflight(session, args.fmt)
    result = compose.agent_up(ctx.project_path, timeout=args.timeout)
    info = result.agent.info
    verb = "started" if result.started else "already running"
    if args.fmt == "json":
        emit_json(
            {
                "provider": "local",
                "started": result.started,
                "pid": info.pid,
                "base_url": info.base_url,
                "state": str(result.agent.paths.root),
            }
        )
        return 0
    print(
        f"agent {verb}: pid {info.pid}, Google APIs at {info.base_url}, "
        f"state {result.agent.paths.root}"
    )
    print('sign in: mlplane auth login | point gcloud at it: eval "$(mlplane env gcloud)"')
    return 0


def run_preflight(session: Session, fmt: str) -> int:
    """`mlplane up` on provider gcp: the project's checks, one line each; exit 0 when all pass."""
    from mlplane.workflows.preflight import check_project

    report = check_project(session)
    if fmt == "json":
        emit_json(report.to_json())
    else:
        render_preflight(report)
    return 0 if report.ok else NOT_READY


def render_preflight(report: PreflightReport) -> None:
    from mlplane.workflows.preflight import EXPORT_FIX
    from mlplane.workflows.preflight_access import BIND_FIX

    who = f", as {report.caller}" if report.caller else ""
    print(f"Google Cloud project {report.project}{who} (read only: nothing is created or changed)")
    export_fix = False
    for c in report.checks:
        line = f"{c.status.upper():<10} {c.subject}" + (f": {c.detail}" if c.detail else "")
        if c.failed and c.fix:
            shared = c.fix in (EXPORT_FIX, BIND_FIX)
            export_fix |= shared
            line += "; fix: " + ("`mlplane export` (below)" if shared else c.fix)
        print(line)
    failed = len(report.failures)
    if not failed:
        print(f"ready: {len(report.checks)} checks passed")
        return
    print(f"not ready: {failed} of {len(report.checks)} checks failed")
    if export_fix:
        print(f"to create and bind what is missing, {EXPORT_FIX}; then run `mlplane up` again")


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
