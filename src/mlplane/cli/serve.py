"""`mlplane serve ...`: deploy, undeploy, list and run service revisions."""

from __future__ import annotations

from mlplane.cli.context import Context, add_dry_run, emit_json

TYPE_CHECKING = False  # as typing's: `serve list` is on the start-up path (no argparse)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence


def _path(text: str) -> object:
    from pathlib import Path  # not at import: `serve list` is on a start-up path

    return Path(text)


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    subs = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", prog=parser.prog)

    p = subs.add_parser("deploy", help="deploy a service revision through the CI trigger 'deploy'")
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("--revision", "-r", required=True, metavar="R")
    p.add_argument(
        "--artifact",
        required=True,
        metavar="PATH|gs://",
        help="model artifact: a path or gs:// prefix",
    )
    p.add_argument("--min", dest="min_replicas", type=int, default=1, metavar="N")
    p.add_argument("--max", dest="max_replicas", type=int, default=3, metavar="M")
    p.add_argument(
        "--traffic",
        type=int,
        default=100,
        metavar="PCT",
        help="share of the service route for this revision (canary); the rest stays on the newest",
    )
    p.add_argument(
        "--direct",
        action="store_true",
        help="apply the revision as yourself instead of through the trigger (the model refuses)",
    )
    add_dry_run(p)
    p.set_defaults(run=run_deploy)

    p = subs.add_parser("bootstrap", help="create the load balancer's front end (trigger 'deploy')")
    add_dry_run(p)
    p.set_defaults(run=run_bootstrap)

    p = subs.add_parser("undeploy", help="remove a revision through the CI trigger 'undeploy'")
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("--revision", "-r", required=True, metavar="R")
    add_dry_run(p)
    p.set_defaults(run=run_undeploy)

    p = subs.add_parser("list", help="revisions with their replicas, health, routes and URLs")
    p.add_argument("--format", dest="fmt", choices=("table", "json"), default="table")
    p.set_defaults(run=run_list)

    p = subs.add_parser("url", help="a service's URL (or a revision's, with --revision)")
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("--revision", "-r", metavar="R")
    p.set_defaults(run=run_url)

    p = subs.add_parser("local", help="serve an artifact ad hoc as yourself (no stack)")
    p.add_argument("--artifact", required=True, type=_path, metavar="PATH")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--service", default=None, help="default: the model's name")
    p.set_defaults(run=run_local)


def run_deploy(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.serving import DeployRequest, deploy, deploy_direct

    session = ctx.session()
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

        rehearse = dryrun.deploy_direct if args.direct else dryrun.deploy
        print(rehearse(session, req).render())
        return 0
    if args.direct:
        deploy_direct(session, req)  # raises PermissionDenied for users, as the model says
        return 0
    result = deploy(session, req, progress=_progress(args))
    print(f"revision {args.revision} of {args.service} answers in {result.seconds_to_ready:.2f} s")
    print(f"  service route:  {result.service_url}predict")
    print(f"  revision route: {result.revision_url}predict")
    invoker = result.build.invoker or session.principal
    print(f"  build {result.build.id}: trigger deploy by {invoker}, as {result.build.runs_as}")
    return 0


def _progress(args: argparse.Namespace) -> Callable[[str], None]:
    import sys

    return lambda line: print(line, file=sys.stderr, flush=True)


def run_bootstrap(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.serving import bootstrap, frontend_url

    session = ctx.session()
    if args.dry_run:
        from mlplane.workflows import dryrun

        print(dryrun.bootstrap(session).render())
        return 0
    build = bootstrap(session, progress=_progress(args))
    print(f"front end ready at {frontend_url(session)} (build {build.id}, as {build.runs_as})")
    return 0


def run_undeploy(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.serving import undeploy

    session = ctx.session()
    if args.dry_run:
        from mlplane.workflows import dryrun

        print(dryrun.undeploy(session, args.service, args.revision).render())
        return 0
    build = undeploy(session, args.service, args.revision, progress=_progress(args))
    print(f"revision {args.revision} of {args.service} removed (build {build.id})")
    return 0


def run_url(ctx: Context, args: argparse.Namespace) -> int:
    """For scripts: `curl "$(mlplane serve url sentiment)predict" -d ...`."""
    from mlplane.errors import ConfigError
    from mlplane.workflows.serving_status import list_revisions

    rows = [r for r in list_revisions(ctx.project_file) if r.service == args.service]
    if args.revision:
        rows = [r for r in rows if r.revision == args.revision]
    if not rows:
        what = f"revision '{args.revision}' of " if args.revision else ""
        raise ConfigError("argument", "SERVICE", f"no {what}'{args.service}' is deployed")
    print(rows[-1].revision_url if args.revision else rows[-1].service_url)
    return 0


def run_list(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.cli.table import format_table
    from mlplane.workflows.serving_status import list_revisions

    rows = list_revisions(ctx.project_file)
    if args.fmt == "json":
        emit_json([r.to_json() for r in rows])
        return 0
    if not rows:
        print("no revisions deployed: `mlplane serve deploy SERVICE --revision R --artifact PATH`")
        return 0
    table = []
    for r in rows:
        healthy = sum(1 for x in r.replicas if x.health == "HEALTHY")
        health = ", ".join(f"{x.name}:{x.health}" for x in r.replicas) or r.note
        table.append(
            (r.service, r.revision, f"{healthy}/{len(r.replicas)}", f"{r.weight}%",
             r.revision_url, health)
        )  # fmt: skip
    print(
        format_table(
            ("service", "revision", "replicas", "traffic", "revision url", "health"), table
        )
    )
    return 0


def run_local(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.serving import serve
    from mlplane.workflows.serving import authorize_local_serving

    session = ctx.session()
    authorize_local_serving(session)
    print(f"serving {args.artifact} as {session.principal} (ad hoc, no stack); Ctrl-C to stop")
    serve(args.artifact, args.port, service=args.service)
    return 0
