"""`mlplane quickstart`: serve the example model through the whole lifecycle, on this machine."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mlplane.cli.context import Context


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    parser.description = (
        "Start the local agent, bootstrap IAM and the load balancer, train the example model, "
        "deploy two revisions through the CI trigger, query both, refuse a direct deploy, "
        "undeploy one, and print the status. Writes mlplane.toml here if there is none."
    )
    parser.set_defaults(run=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    import time

    from mlplane.workflows.quickstart import run as quickstart

    start = time.monotonic()
    result = quickstart(ctx.project_path, say=lambda line: print(line, flush=True))
    from mlplane.cli.agent import render_status
    from mlplane.workflows.status import project_status

    render_status(project_status(ctx.project_path))
    print(f"done in {time.monotonic() - start:.1f} s. The agent keeps serving at {result.url}")
    print("try: mlplane serve list | mlplane iam plan | mlplane down (stops everything)")
    return 0
