"""`mlplane iam ...`: plan, check, explain, compare, export, audit.

Imports stay inside the commands: `iam check` runs on the cached compiled policy and must not
pay for pydantic or the role catalog.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from mlplane.cli.context import Context, emit_json

# Subcommands defined in their own modules (each has `configure(parser)`).
EXTERNAL = {
    "export": ("mlplane.cli.iam_export", "export the synthesized IAM (terraform, gcloud, json)"),
    "audit": ("mlplane.cli.iam_audit", "audit a live project's IAM policy against the model"),
}


def _fmt(p: argparse.ArgumentParser, choices: tuple[str, ...] = ("table", "json")) -> None:
    p.add_argument("--format", dest="fmt", choices=choices, default=choices[0])


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    subs = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", prog=parser.prog)

    p = subs.add_parser("plan", help="service accounts, custom roles and bindings from the model")
    _fmt(p)
    p.set_defaults(run=run_plan)

    p = subs.add_parser(
        "check",
        help="may a principal perform an ACTION or hold a PERMISSION? (exit 0 allow, 3 deny)",
    )
    p.add_argument(
        "--principal",
        "-p",
        dest="principal",
        required=True,
        metavar="PRINCIPAL",
        help="whom to ask about (a what-if: nobody acts): user:EMAIL, EMAIL, group:EMAIL, "
        "serviceAccount:EMAIL or an identity id",
    )
    p.add_argument(
        "-r",
        "--resource",
        metavar="KIND:NAME",
        help="e.g. bucket:NAME, instance:NAME, serviceAccount:IDENTITY, gs://BUCKET/PATH",
    )
    _fmt(p, ("text", "json"))
    p.add_argument("what", metavar="ACTION|PERMISSION")
    p.set_defaults(run=run_check)

    p = subs.add_parser("explain", help="which actions need a PERMISSION, ROLE or ACTION, and why")
    p.add_argument("subject", metavar="PERMISSION|ROLE|ACTION")
    _fmt(p)
    p.set_defaults(run=run_explain)

    p = subs.add_parser(
        "compare", help="each synthesized role beside the narrowest predefined roles"
    )
    _fmt(p)
    p.set_defaults(run=run_compare)

    for name, (module, help_) in EXTERNAL.items():
        p = subs.add_parser(name, help=help_, description=help_)
        if argv[:1] == [name]:  # import a subcommand's module only when it is invoked
            importlib.import_module(module).configure(p, argv[1:])


def run_plan(ctx: Context, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from mlplane.cli.render import render_plan
    from mlplane.iam.loading import load_project
    from mlplane.iam.synthesis import synthesize

    plan = synthesize(load_project(ctx.project_path))
    if args.fmt == "json":
        emit_json(asdict(plan))
    else:
        render_plan(plan)
    return 0


def run_check(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.cli.resources import parse_resource, validate_subject
    from mlplane.iam.authorizer import Authorizer
    from mlplane.iam.compiled import policy_for

    authz = Authorizer(policy_for(ctx.project_file))
    validate_subject(authz, args.what)
    ref = parse_resource(authz, args.resource) if args.resource else None
    decision = authz.authorize(authz.principal(args.principal), args.what, ref)
    if args.fmt == "json":
        emit_json(
            {
                "allowed": decision.allowed,
                "principal": str(decision.principal),
                "action": decision.action,
                "permissions": list(decision.permissions),
                "resource": str(decision.resource),
                "granted_by": decision.granted_by,
                "missing": list(decision.missing),
                "sanctioned_path": decision.sanctioned_path,
            }
        )
    else:
        print(decision.explain())
    return 0 if decision.allowed else 3


def run_explain(ctx: Context, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from mlplane.cli.render import render_explanation
    from mlplane.iam.catalog import load_catalog
    from mlplane.iam.explain import explain
    from mlplane.iam.loading import load_project
    from mlplane.iam.synthesis import synthesize

    loaded = load_project(ctx.project_path)
    result = explain(args.subject, loaded, synthesize(loaded), load_catalog())
    if args.fmt == "json":
        emit_json(asdict(result))
    else:
        render_explanation(result)
    return 0


def run_compare(ctx: Context, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from mlplane.cli.render import render_comparisons
    from mlplane.iam.catalog import load_catalog
    from mlplane.iam.compare import compare
    from mlplane.iam.loading import load_project
    from mlplane.iam.synthesis import synthesize

    rows = compare(synthesize(load_project(ctx.project_path)), load_catalog())
    if args.fmt == "json":
        emit_json([asdict(r) | {"ratio": round(r.ratio, 4)} for r in rows])
    else:
        render_comparisons(rows)
        print(
            "Baselines: each permission's own service's GA, general-purpose roles first; "
            "deprecated, service-agent and basic roles never (docs/decisions/0903). "
            "What each row excluded, and why: --format json (excluded, cross_service)."
        )
    return 0
