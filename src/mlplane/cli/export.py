"""`mlplane export`: the whole foundation of an empty project, as Terraform JSON or a gcloud
script (APIs, service accounts, custom roles, the resources bindings are scoped to, the firewall
and load-balancer stack, the Endpoints service, bindings, CI triggers, auxiliary services).
`mlplane iam export` stays: IAM alone, for a project whose resources exist."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mlplane.cli.context import Context

FORMATS = ("terraform", "gcloud")


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=FORMATS,
        default="terraform",
        help="terraform: one *.tf.json configuration; gcloud: a bash script that runs to the "
        "end on an empty project and changes nothing when run again (default: terraform)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write to FILE (atomically) instead of standard output",
    )
    parser.set_defaults(run=run_export)


def render(project_path: Path, fmt: str) -> str:
    from mlplane.iam.export.foundation import build_foundation
    from mlplane.iam.loading import load_project
    from mlplane.iam.synthesis import synthesize

    loaded = load_project(project_path)
    foundation = build_foundation(loaded, synthesize(loaded))
    if fmt == "terraform":
        from mlplane.iam.export.terraform_foundation import render_foundation_terraform

        return render_foundation_terraform(foundation)
    from mlplane.iam.export.gcloud_foundation import render_foundation_gcloud

    return render_foundation_gcloud(foundation)


def run_export(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.cli.iam_export import write_atomically

    text = render(ctx.project_path, args.fmt)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    write_atomically(args.output, text, 0o755 if args.fmt == "gcloud" else 0o644)
    print(f"wrote {args.output} ({args.fmt})", file=sys.stderr)
    return 0
