"""`mlplane iam export`: the synthesized IAM as Terraform JSON, a gcloud script, or JSON."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mlplane.cli.context import Context
from mlplane.errors import ConfigError

FORMATS = ("terraform", "gcloud", "json")


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=FORMATS,
        default="terraform",
        help="terraform: *.tf.json; gcloud: a re-runnable bash script; json: the plan with "
        "the actions (requirement, reason) behind every binding (default: terraform)",
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
    from mlplane.iam.loading import load_project
    from mlplane.iam.synthesis import synthesize

    loaded = load_project(project_path)
    plan = synthesize(loaded)
    if fmt == "terraform":
        from mlplane.iam.export.terraform import render_terraform

        return render_terraform(plan)
    if fmt == "gcloud":
        from mlplane.iam.export.gcloud import render_gcloud

        return render_gcloud(plan)
    from mlplane.iam.export.json_format import render_json

    return render_json(plan, loaded)


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Write via a temporary file and a rename: readers never see half a file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot write: {exc.strerror}") from None


def run_export(ctx: Context, args: argparse.Namespace) -> int:
    text = render(ctx.project_path, args.fmt)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    write_atomically(args.output, text, 0o755 if args.fmt == "gcloud" else 0o644)
    print(f"wrote {args.output} ({args.fmt})", file=sys.stderr)
    return 0
