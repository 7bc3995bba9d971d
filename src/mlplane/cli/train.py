"""`mlplane train ...`: run a training spec here or on a self-deleting training VM."""

from __future__ import annotations

from mlplane.cli.context import Context, add_dry_run, emit_json

TYPE_CHECKING = False  # as typing's: `train list` is on the start-up path (no argparse, pathlib)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from pathlib import Path


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text)


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    subs = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", prog=parser.prog)
    p = subs.add_parser("run", help="run a training spec (train.toml) here, or --remote on a VM")
    p.add_argument("spec", type=_path, metavar="SPEC")
    p.add_argument(
        "--remote",
        action="store_true",
        help="on a training VM that runs as training-adhoc and deletes itself at the end",
    )
    p.add_argument("--no-wait", dest="wait", action="store_false", help="with --remote: return")
    p.add_argument("--timeout", type=float, default=3600.0, help="with --remote: wait at most")
    p.add_argument(
        "--output",
        type=_path,
        metavar="DIR",
        help="a local run's outputs go here (a new or empty directory) instead of scratch",
    )
    add_dry_run(p)
    p.set_defaults(run=run_run)
    p = subs.add_parser("list", help="training VMs: owner, state, exit code, log")
    p.add_argument("--format", dest="fmt", choices=("table", "json"), default="table")
    p.set_defaults(run=run_list)
    p = subs.add_parser("logs", help="the log of a training VM (kept after it is gone)")
    p.add_argument("instance", metavar="INSTANCE")
    p.set_defaults(run=run_logs)
    p = subs.add_parser("cancel", help="delete one of your training VMs")
    p.add_argument("instance", metavar="INSTANCE")
    add_dry_run(p)
    p.set_defaults(run=run_cancel)
    p = subs.add_parser("reap", help="remove your training VMs whose job is gone")
    add_dry_run(p)
    p.set_defaults(run=run_reap)


def run_run(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows import training

    session = ctx.session()
    if args.dry_run:
        if not args.remote:
            from mlplane.errors import ConfigError

            raise ConfigError(
                "--dry-run", "", "applies to --remote runs (a local run sends no request: it "
                "runs the job here, as you, with outputs in scratch)",
            )  # fmt: skip
        from mlplane.workflows import dryrun

        print(dryrun.train_remote(session, args.spec, wait=args.wait).render())
        return 0
    spec = training.load_spec(args.spec)
    if args.output is not None and args.remote:
        from mlplane.errors import ConfigError

        raise ConfigError("argument", "--output", "is for local runs (a VM's disk goes with it)")
    if not args.remote:
        code, out = training.run_local(session, spec, args.spec.parent, args.output)
        where = "" if args.output is not None else "scratch, "
        print(f"local run: exit {code}; outputs ({where}not persisted) in {out}")
        return code
    run = training.run_remote(session, spec, args.spec.parent)
    if not args.wait:
        print(f"started {run.instance}; `mlplane train logs {run.instance}`")
        return 0
    code = training.wait(session, run, args.timeout)
    print(f"{run.instance} deleted itself; job exit {code}; log: mlplane train logs {run.instance}")
    return code


def run_list(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.instance_lists import training_runs

    runs = training_runs(ctx.project_file)  # the local start-up path
    if runs is None:
        from mlplane.workflows.training import list_runs

        runs = list_runs(ctx.session())
    if args.fmt == "json":
        emit_json([r.to_json() for r in runs])
        return 0
    for r in runs:
        code = "-" if r.exit_code is None else str(r.exit_code)
        print(f"{r.instance:32} {r.spec:16} {r.owner:16} {r.state:8} exit {code:>4}  {r.log}")
    if not runs:
        print("no training VMs")
    return 0


def run_logs(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.errors import ConfigError
    from mlplane.workflows.training import log_path

    path = log_path(ctx.session(), args.instance)
    if not path.is_file():
        raise ConfigError("argument", "INSTANCE", f"no log for '{args.instance}' ({path})")
    print(path.read_text(errors="replace"), end="")
    return 0


def run_cancel(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.training import cancel

    session = ctx.session()
    if args.dry_run:
        from mlplane.workflows import dryrun

        print(dryrun.train_cancel(session, args.instance).render())
        return 0
    cancel(session, args.instance)
    print(f"deleted {args.instance}")
    return 0


def run_reap(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.training import reap

    session = ctx.session()
    if args.dry_run:
        from mlplane.workflows import dryrun

        print(dryrun.train_reap(session).render())
        return 0
    gone = reap(session)
    print(f"reaped {len(gone)}: {', '.join(gone)}" if gone else "nothing to reap")
    return 0
