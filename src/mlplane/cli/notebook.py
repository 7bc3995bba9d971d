"""`mlplane notebook ...`: JupyterLab notebooks on VMs that run as the experimentation SA."""

from __future__ import annotations

from mlplane.cli.context import Context, add_dry_run, emit_json

TYPE_CHECKING = False  # as typing's: `notebook list` is on the start-up path (no argparse)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    subs = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", prog=parser.prog)
    p = subs.add_parser("create", help="a JupyterLab notebook VM (runs as the experimentation SA)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--machine-type", default="e2-standard-4")
    add_dry_run(p)
    p.set_defaults(run=run_create)
    p = subs.add_parser("list", help="notebooks: owner, state, URL, age, idle time")
    p.add_argument("--format", dest="fmt", choices=("table", "json"), default="table")
    p.set_defaults(run=run_list)
    p = subs.add_parser("delete", help="stop and delete one of your notebooks")
    p.add_argument("name", metavar="NAME")
    add_dry_run(p)
    p.set_defaults(run=run_delete)


def run_create(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.notebooks import create

    session = ctx.session()
    if args.dry_run:
        from mlplane.workflows import dryrun

        print(dryrun.notebook_create(session, args.name, args.machine_type).render())
        return 0
    info = create(session, args.name, args.machine_type)
    print(f"notebook {info.name} ({info.instance}) runs as {session.email('experimentation')}")
    print(f"  {info.url}")
    return 0


def run_list(ctx: Context, args: argparse.Namespace) -> int:
    import time

    from mlplane.workflows.instance_lists import notebooks

    rows = notebooks(ctx.project_file)  # the local start-up path
    if rows is None:
        from mlplane.workflows.notebooks import list_notebooks

        rows = list_notebooks(ctx.session())
    if args.fmt == "json":
        emit_json([r.to_json() for r in rows])
        return 0
    for r in rows:
        age = f"{(time.time() - r.created) / 60:.0f}m"
        idle = "-" if r.idle_seconds is None else f"{r.idle_seconds / 60:.0f}m"
        print(f"{r.name:16} {r.owner:24} {r.state:8} age {age:>5} idle {idle:>5}  {r.url}")
    if not rows:
        print("no notebooks: `mlplane notebook create NAME`")
    return 0


def run_delete(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.notebooks import delete

    session = ctx.session()
    if args.dry_run:
        from mlplane.workflows import dryrun

        print(dryrun.notebook_delete(session, args.name).render())
        return 0
    delete(session, args.name)
    print(f"deleted notebook {args.name}")
    return 0
