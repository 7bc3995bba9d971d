"""`mlplane ci ...`: invoke CI triggers and list builds."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mlplane.cli.context import Context, emit_json
from mlplane.errors import ConfigError


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    subs = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", prog=parser.prog)
    p = subs.add_parser("trigger", help="invoke a manual CI trigger (runs as its service account)")
    p.add_argument("name", metavar="TRIGGER")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the trigger's arguments")
    p.set_defaults(run=run_trigger)
    p = subs.add_parser("builds", help="builds run by triggers: who invoked them, as whom, result")
    p.add_argument("--format", dest="fmt", choices=("table", "json"), default="table")
    p.set_defaults(run=run_builds)


def run_trigger(ctx: Context, args: argparse.Namespace) -> int:
    """`deploy` and `undeploy` take the arguments of `serve deploy|undeploy`."""
    from mlplane.cli.main import main

    if args.name in ("deploy", "undeploy"):
        return main(["-f", str(ctx.project_path), "serve", args.name, *args.args])
    if args.name == "train":
        return _train(ctx, args.args)
    from mlplane.workflows.session import Session

    triggers = Session.open(ctx.project_path).authz.policy.triggers
    if args.name not in triggers:
        raise ConfigError(
            "argument", "TRIGGER", f"no trigger '{args.name}' ({', '.join(triggers)})"
        )
    info = triggers[args.name]
    if info.event != "manual":
        raise ConfigError("argument", "TRIGGER", f"'{args.name}' is not manual: it {info.usage}")
    raise ConfigError(
        "argument",
        "TRIGGER",
        f"the '{args.name}' pipeline ({info.process}) is not built yet in this version of mlplane",
    )


def _train(ctx: Context, argv: list[str]) -> int:
    from pathlib import Path

    from mlplane.workflows import training
    from mlplane.workflows.session import Session

    p = argparse.ArgumentParser(prog="mlplane ci trigger train")
    p.add_argument("spec", type=Path, metavar="SPEC")
    p.add_argument("--as", dest="as_", metavar="USER")
    args = p.parse_args(argv)
    session = Session.open(ctx.project_path)
    spec = training.load_spec(args.spec)
    run = training.run_ci(session, spec, args.spec.parent, session.user(args.as_))
    print(f"build {run.build_id}: persisted {len(run.objects)} objects under {run.prefix}")
    print(f"serve it: mlplane serve deploy {spec.name} --revision r1 --artifact {run.prefix}")
    return 0


def run_builds(ctx: Context, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from mlplane.workflows.ci import list_builds
    from mlplane.workflows.session import Session

    builds = list_builds(Session.open(ctx.project_path))
    if args.fmt == "json":
        emit_json([asdict(b) for b in builds])
        return 0
    import time

    for b in builds:
        when = time.strftime("%H:%M:%S", time.localtime(b.started))
        took = f"{b.finished - b.started:.2f}s" if b.finished else "-"
        print(
            f"{b.id}  {when}  {b.trigger:10} {b.status:8} {took:>7}  by {b.invoker} as {b.runs_as}"
        )
        if b.error:
            print(f"    error: {b.error[:300]}")
    return 0
