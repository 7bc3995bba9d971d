"""`mlplane env gcloud`: point the real gcloud CLI at this project's endpoints.

    eval "$(mlplane env gcloud)"
    gcloud compute instances list          # served by the local agent, as the signed-in user

Locally: the project, zone and region, every API's endpoint override, and a file holding a
current access token of the signed-in account (gcloud sends it as is and does not refresh it:
run this again after an hour). On `provider = "gcp"`: the project only.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence

from mlplane.cli.context import Context


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    parser.description = __doc__.splitlines()[0] if __doc__ else ""
    parser.add_argument("tool", choices=("gcloud",), help="the tool to configure")
    parser.add_argument("--unset", action="store_true", help="print `unset` lines instead")
    parser.set_defaults(run=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.gcloud_env import gcloud_environment

    env = gcloud_environment(ctx.session())
    for name, value in env.items():
        print(f"unset {name}" if args.unset else f"export {name}={shlex.quote(value)}")
    return 0
