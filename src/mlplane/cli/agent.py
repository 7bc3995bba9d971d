"""`mlplane up`, `mlplane down`, `mlplane status`: the project's local agent.

One module for the three commands; `configure` tells them apart by the parser's prog
(`mlplane up`, ...), which `cli.main` sets from the command name.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlplane.cli.context import Context, emit_json

if TYPE_CHECKING:
    from mlplane.providers.local.wire import AgentStatus


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    command = parser.prog.split()[-1]
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait (default: %(default)s)"
    )
    if command == "up":
        parser.description = "start the project's local agent in the background (idempotent)"
        parser.set_defaults(run=run_up)
    elif command == "down":
        parser.description = "stop the local agent and every process it supervises"
        parser.set_defaults(run=run_down)
    else:
        parser.description = "every local resource and replica, as the agent sees them"
        parser.add_argument("--format", dest="fmt", choices=("table", "json"), default="table")
        parser.set_defaults(run=run_status)


def run_up(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.providers.local.control import start_agent

    result = start_agent(ctx.project_path, timeout=args.timeout)
    info = result.agent.info
    verb = "started" if result.started else "already running"
    print(
        f"agent {verb}: pid {info.pid}, API http://127.0.0.1:{info.port}, "
        f"state {result.agent.paths.root}"
    )
    return 0


def run_down(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.providers.local.control import stop_agent

    result = stop_agent(ctx.project_path, timeout=args.timeout)
    if result.pid is None:
        print("no agent running")
    else:
        how = "killed (it ignored SIGTERM)" if result.forced else "stopped"
        print(f"agent {how}: pid {result.pid}")
    if result.leftovers:
        print(f"killed {result.leftovers} processes left by a crashed agent")
    return 0


def run_status(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.providers.local.client import AgentNotRunning
    from mlplane.providers.local.control import find_agent

    handle = find_agent(ctx.project_path)
    if handle is None:
        raise AgentNotRunning(f"no local agent is running for {ctx.project_path} (`mlplane up`)")
    status = handle.client().status()
    if args.fmt == "json":
        emit_json(status.to_json())
        return 0
    render_status(status)
    return 0


def render_status(status: AgentStatus) -> None:
    import sys
    import time

    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)
    age = time.time() - status.started_at
    console.print(
        f"agent pid {status.pid} on 127.0.0.1:{status.port}, project {status.project}, "
        f"up {age:.0f}s"
    )
    t = Table(title="Resources", title_justify="left")
    for col in ("kind", "name", "lifecycle", "state", "owner", "detail"):
        t.add_column(col, overflow="fold")
    for r in status.resources:
        t.add_row(r.kind, r.name, r.lifecycle, r.state, r.owner, r.detail)
    console.print(t)
    p = Table(title="Processes", title_justify="left")
    for col in ("group", "instance", "pid", "port", "metadata", "status", "health", "runs as"):
        p.add_column(col, overflow="fold")
    for v in status.replicas:
        p.add_row(
            v.group or "-",
            v.name,
            _str(v.pid),
            _str(v.port),
            _str(v.metadata_port),
            v.status + (f" ({v.restarts} restarts)" if v.restarts else ""),
            v.health,
            v.service_account or "-",
        )
    console.print(p)


def _str(value: int | None) -> str:
    return "-" if value is None else str(value)
