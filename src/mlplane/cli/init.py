"""`mlplane init`: write a commented mlplane.toml, validated before anything is written."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mlplane.cli.context import Context


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    parser.description = "Write a new mlplane.toml (nothing is written if a value is invalid)."
    parser.add_argument("--project-id", default="mlplane-demo", help="the GCP project id")
    parser.add_argument("--region", default="us-central1")
    parser.add_argument("--zone", default=None, help="default: REGION-a")
    parser.add_argument("--provider", choices=("local", "gcp"), default="local")
    parser.add_argument(
        "--member",
        dest="members",
        action="append",
        default=[],
        help="user:EMAIL or group:EMAIL (repeatable; default: you)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.set_defaults(run=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.project_file import write_project_file

    path = ctx.project_path if ctx.project_override else Path.cwd() / "mlplane.toml"
    write_project_file(
        path,
        project_id=args.project_id,
        region=args.region,
        zone=args.zone,
        provider=args.provider,
        members=args.members,
        force=args.force,
    )
    print(f"wrote {path}: project {args.project_id}, provider {args.provider}")
    print("next: `mlplane iam plan` to see the IAM it implies, `mlplane quickstart` to serve")
    return 0
