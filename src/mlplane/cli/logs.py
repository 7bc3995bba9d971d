"""`mlplane logs RESOURCE`: an instance's log entries, oldest first; `-f` follows new ones."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from mlplane.cli.context import Context

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (start-up path)
if TYPE_CHECKING:
    from mlplane.data.logs.entry import LogEntry

SEVERITIES = (
    "DEFAULT DEBUG INFO NOTICE WARNING ERROR CRITICAL ALERT EMERGENCY".split()  # noqa: SIM905
)


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    parser.add_argument(
        "resource", metavar="RESOURCE", nargs="?", help="the instance's name (none: list them)"
    )
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new entries until Ctrl-C"
    )
    parser.add_argument(
        "--since", metavar="WHEN", help="a duration before now (30s, 10m, 2h, 1d) or RFC 3339"
    )
    parser.add_argument(
        "--severity",
        type=str.upper,
        choices=SEVERITIES,
        default="DEFAULT",
        metavar="LEVEL",
        help="only entries at least this severe (DEBUG, INFO, WARNING, ERROR, ...)",
    )
    parser.add_argument("--log", metavar="LOG_ID", help="one log only (default: all of them)")
    parser.add_argument("--format", dest="fmt", choices=("text", "json"), default="text")
    # Bounded follow, for tests and scripts: stop after this many seconds.
    parser.add_argument("--follow-seconds", type=float, help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def render(entry: LogEntry, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(entry.to_json(), separators=(",", ":"))
    return f"{entry.timestamp} {entry.severity.name:<8} {entry.message}"


def run(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.data.identity import Caller
    from mlplane.data.logs.entry import Severity, check_instance_name
    from mlplane.data.logs.reader import LogQuery, LogReader, parse_since, require_reader
    from mlplane.data.logs.store import LocalLogStore

    caller = Caller.resolve(ctx.project_path)
    require_reader(caller)
    store = LocalLogStore.for_project(caller.project_file)
    if args.resource is None:
        for name in store.resources():
            print(name)
        return 0
    query = LogQuery(
        resource=check_instance_name(args.resource),
        since_ns=parse_since(args.since) if args.since else None,
        min_severity=Severity[args.severity],
        log_id=args.log,
    )
    reader = LogReader(store, query)
    if not store.logs_of(query.resource):
        known = ", ".join(store.resources()) or "none yet"
        print(
            f"no logs for instance '{query.resource}' (instances with logs: {known})",
            file=sys.stderr,
        )
    if not (args.follow or args.follow_seconds):
        for entry in reader.poll():
            print(render(entry, args.fmt))
        return 0
    deadline = None if args.follow_seconds is None else time.monotonic() + args.follow_seconds
    try:
        for entry in reader.follow(lambda: deadline is not None and time.monotonic() >= deadline):
            print(render(entry, args.fmt), flush=True)
    except KeyboardInterrupt:  # Ctrl-C is how a follow ends
        pass
    return 0
