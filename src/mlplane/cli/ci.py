"""`mlplane ci ...`: run CI triggers (their builds run as the trigger's service account), list
builds, and `ci step`: what a trigger's build runs (only a build's identity can do its work)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mlplane.cli.context import Context, add_dry_run, emit_json

TRIGGERS_HELP = """\
triggers (from the operational model):
  deploy     mlplane ci trigger deploy SERVICE --revision R --artifact URI  (= serve deploy)
  undeploy   mlplane ci trigger undeploy SERVICE --revision R               (= serve undeploy)
  train      mlplane ci trigger train SPEC    run SPEC from the project's source as the
             training service account and persist its outputs to the artifact bucket
  build-images  runs on every push to main: `mlplane ci run build-images --branch main`
"""


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    subs = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", prog=parser.prog)
    p = subs.add_parser(
        "trigger",
        help="run a manual CI trigger (its build runs as the trigger's service account)",
        epilog=TRIGGERS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", metavar="TRIGGER", help="deploy, undeploy or train")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the trigger's arguments")
    add_dry_run(p)
    p.set_defaults(run=run_trigger)
    p = subs.add_parser(
        "run", help="run a push trigger as a push to --branch would (e.g. from a git hook)"
    )
    p.add_argument("name", metavar="TRIGGER", help="build-images")
    p.add_argument("--branch", required=True, help="the branch pushed to (the trigger's: main)")
    add_dry_run(p)
    p.set_defaults(run=run_push)
    p = subs.add_parser("builds", help="builds: who invoked which trigger, as whom, from what")
    p.add_argument("--format", dest="fmt", choices=("table", "json"), default="table")
    p.set_defaults(run=run_builds)
    p = subs.add_parser("step", help="a trigger's build step (run by the build, as its identity)")
    steps = p.add_subparsers(title="steps", metavar="TRIGGER", prog=p.prog)
    s = steps.add_parser("deploy", help="deploy a revision (or --bootstrap the front end)")
    s.add_argument("--service", default="")
    s.add_argument("--revision", default="")
    s.add_argument("--artifact", default="")
    s.add_argument("--traffic", type=int, default=100)
    s.add_argument("--min", dest="min_replicas", type=int, default=1)
    s.add_argument("--max", dest="max_replicas", type=int, default=3)
    s.add_argument("--bootstrap", choices=("true", "false"), default="false")
    add_dry_run(s)
    s.set_defaults(run=run_step_deploy)
    s = steps.add_parser("undeploy", help="remove a revision")
    s.add_argument("--service", required=True)
    s.add_argument("--revision", required=True)
    add_dry_run(s)
    s.set_defaults(run=run_step_undeploy)
    s = steps.add_parser("train", help="run a training spec and persist its outputs")
    s.add_argument("--spec", required=True, type=Path)
    add_dry_run(s)
    s.set_defaults(run=run_step_train)
    s = steps.add_parser("build-images", help="prepare, then deploy what the image builds changed")
    from mlplane.cli.images import add_step_arguments

    add_step_arguments(s)
    s.set_defaults(run=run_step_build_images)


def run_trigger(ctx: Context, args: argparse.Namespace) -> int:
    """`deploy` and `undeploy` take the arguments of `serve deploy|undeploy`."""
    from mlplane.cli.main import main
    from mlplane.workflows.ci import check_trigger

    extra = ["--dry-run"] if args.dry_run and "--dry-run" not in args.args else []
    if args.name in ("deploy", "undeploy"):
        return main(["-f", str(ctx.project_path), "serve", args.name, *args.args, *extra])
    session = ctx.session()
    check_trigger(session, args.name)
    if args.name == "train":
        return _train(ctx, [*args.args, *extra])
    from mlplane.errors import ConfigError

    raise ConfigError("argument", "TRIGGER", f"'{args.name}' takes no arguments here")


def _train(ctx: Context, argv: list[str]) -> int:
    from mlplane.workflows import training

    p = argparse.ArgumentParser(prog="mlplane ci trigger train")
    p.add_argument("spec", type=Path, metavar="SPEC")
    add_dry_run(p)
    args = p.parse_args(argv)
    session = ctx.session()
    if args.dry_run:
        from mlplane.workflows import dryrun

        print(dryrun.train_ci(session, args.spec).render())
        return 0
    run = training.run_ci(session, args.spec, progress=_progress)
    print(f"build {run.build_id}: persisted {len(run.objects)} objects under {run.prefix}")
    if run.source:
        print(f"  source: {run.source}")
    for uri, size, md5, crc in run.objects:
        print(f"  {uri}  {size} bytes  md5 {md5}  crc32c {crc}")
    name = training.load_spec(args.spec).name
    print(f"serve it: mlplane serve deploy {name} --revision r1 --artifact {run.prefix}")
    return 0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_builds(ctx: Context, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from mlplane.workflows.ci import list_builds

    builds = list_builds(ctx.session())
    if args.fmt == "json":
        emit_json([asdict(b) for b in builds])
        return 0
    import time

    for b in builds:
        when = time.strftime("%H:%M:%S", time.localtime(b.started or 0))
        took = f"{b.finished - b.started:.2f}s" if b.finished and b.started else "-"
        print(
            f"{b.id}  {when}  {b.trigger:10} {b.status:8} {took:>7}  by {b.invoker} as {b.runs_as}"
        )
        if b.source:
            print(f"    source: {b.source}")
        for o in b.objects:
            print(f"    wrote {o.uri} ({o.size} bytes, md5 {o.md5_hash})")
        if b.detail and b.status != "SUCCESS":
            print(f"    {b.detail[:300]}")
    if not builds:
        print("no builds yet")
    return 0


def run_step_deploy(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.serving import DeployRequest, bootstrap_step, deploy_step

    session = ctx.session()
    _progress(f"deploy step as {session.principal}")
    if args.bootstrap == "true":
        if args.dry_run:
            from mlplane.workflows import dryrun

            print(dryrun.bootstrap_step(session).render())
            return 0
        bootstrap_step(session, _progress)
        return 0
    req = DeployRequest(
        args.service,
        args.revision,
        args.artifact,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        traffic=args.traffic,
    )
    if args.dry_run:
        from mlplane.workflows import dryrun

        print(dryrun.deploy_step(session, req).render())
        return 0
    url = deploy_step(session, req, _progress)
    _progress(f"revision {args.revision} of {args.service} answers at {url}")
    return 0


def run_step_undeploy(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.serving import undeploy_step

    session = ctx.session()
    _progress(f"undeploy step as {session.principal}")
    if args.dry_run:
        from mlplane.workflows import dryrun

        print(dryrun.undeploy_step(session, args.service, args.revision).render())
        return 0
    undeploy_step(session, args.service, args.revision, _progress)
    return 0


def run_step_train(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.training import train_step

    session = ctx.session()
    if args.dry_run:
        from mlplane.workflows import dryrun

        print(dryrun.train_step(session, args.spec).render())
        return 0
    run = train_step(session, args.spec, _progress)
    _progress(f"persisted {len(run.objects)} objects under {run.prefix}")
    return 0


def run_step_build_images(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.cli.images import run_step

    return run_step(ctx, args)


def run_push(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.ci import run_on_branch

    if args.dry_run:
        from mlplane.workflows import dryrun

        print(dryrun.push_trigger(ctx.session(), args.name, args.branch).render())
        return 0
    build = run_on_branch(ctx.session(), args.name, args.branch, progress=_progress)
    print(f"build {build.id} {build.status}: {build.trigger} as {build.runs_as}, {build.source}")
    if build.detail:
        print(f"  {build.detail}")
    for image in build.images:
        print(f"  pushed {image.name.rsplit(':', 1)[0]}@{image.digest}")
    return 0
