"""The `mlplane` command.

argparse, with each command group in its own module imported only when invoked: `mlplane --help`
and `mlplane iam check` must start in a few times `python -c pass` (docs/decisions/0005-cli.md).
A command module defines `configure(parser, argv)` (argv: the arguments after the command, so
it can import subcommand modules lazily too), which sets `run(ctx, args) -> int` as a default.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from mlplane import __version__
from mlplane.cli.context import Context
from mlplane.errors import MlplaneError

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (start-up path)
if TYPE_CHECKING:
    from typing import Any

# name -> (module, one-line help shown by `mlplane --help` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("mlplane.cli.init", "write a new mlplane.toml for a GCP project"),
    "auth": ("mlplane.cli.auth", "sign in as a team member; list accounts; print a token"),
    "env": ("mlplane.cli.env", "export lines that point the gcloud CLI at the local agent"),
    "iam": ("mlplane.cli.iam", "least-privilege IAM from the operational model"),
    "export": ("mlplane.cli.export", "the project's whole foundation as Terraform or gcloud"),
    "up": ("mlplane.cli.agent", "start the project's local agent (idempotent)"),
    "down": ("mlplane.cli.agent", "stop the local agent and every process it supervises"),
    "status": ("mlplane.cli.agent", "local resources and replicas: state, owner, pid, health"),
    "serve": ("mlplane.cli.serve", "deploy, undeploy, list and run service revisions"),
    "ci": ("mlplane.cli.ci", "invoke CI triggers (they run as their service account); builds"),
    "images": ("mlplane.cli.images", "the process images: definitions, Debian base, pushed"),
    "notebook": (
        "mlplane.cli.notebook",
        "JupyterLab notebooks on VMs that run as the experimentation SA",
    ),
    "train": ("mlplane.cli.train", "run a training spec here, or on a VM that deletes itself"),
    "quickstart": ("mlplane.cli.quickstart", "serve the example model end to end on this machine"),
    "artifacts": ("mlplane.cli.artifacts", "gs:// artifact buckets: ls, cp, cat, rm"),
    "secrets": ("mlplane.cli.secrets", "list, read and add versions of the project's secrets"),
    "logs": ("mlplane.cli.logs", "an instance's log entries (Cloud Logging's shape); -f follows"),
    "state": (
        "mlplane.cli.state",
        "check the state database; the team state (gcp): show, unlock a stale lock",
    ),
}


class Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter imports shutil (and bz2, lzma) for the terminal width each time a
    parser validates an argument; take the width from os instead (start-up path)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            try:
                columns = int(os.environ.get("COLUMNS", "0")) or os.get_terminal_size().columns
            except (OSError, ValueError):
                columns = 80
            width = max(columns - 2, 40)
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """ArgumentParser with mlplane's formatter; subparsers inherit the class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)


def _top_parser() -> argparse.ArgumentParser:
    width = max(len(n) for n in COMMANDS) + 2
    epilog = "commands:\n" + "\n".join(
        f"  {name:<{width}}{help_}" for name, (_, help_) in COMMANDS.items()
    )
    epilog += "\n\nRun `mlplane COMMAND --help` for a command's options."
    p = Parser(
        prog="mlplane",
        description="mlplane: the control plane for an ML team's Google Cloud project.",
        epilog=epilog,
    )
    p.add_argument("--version", action="version", version=f"mlplane {__version__}")
    p.add_argument(
        "-f",
        "--file",
        metavar="FILE",
        help="project file (default: $MLPLANE_PROJECT, else the nearest mlplane.toml upward)",
    )
    p.add_argument(
        "--impersonate-service-account",
        metavar="SA",
        dest="impersonate",
        help="act as this service account (an identity id or email), if IAM allows you "
        "getAccessToken on it, as gcloud's flag of the same name",
    )
    p.add_argument("command", nargs="?", metavar="COMMAND")
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    top = _top_parser()
    ns = top.parse_args(sys.argv[1:] if argv is None else list(argv))
    if ns.command is None:
        top.print_help()
        return 0
    if ns.command not in COMMANDS:
        top.error(f"unknown command '{ns.command}' (choose from {', '.join(COMMANDS)})")
    refusal = _identity_claim(ns.args)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 3
    module_name, help_ = COMMANDS[ns.command]
    sub = Parser(prog=f"mlplane {ns.command}", description=help_)
    importlib.import_module(module_name).configure(sub, ns.args)
    args = sub.parse_args(ns.args)
    if not hasattr(args, "run"):
        sub.print_help()
        return 2
    try:
        ctx = Context(ns.file, ns.impersonate)
        saved = os.environ.get("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE")
        try:
            ctx.impersonate_now()
            code: int = args.run(ctx, args)
        finally:  # main() may run in-process (tests, quickstart): leave the environment as found
            if ns.impersonate:
                if saved is None:
                    os.environ.pop("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", None)
                else:
                    os.environ["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"] = saved
    except MlplaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mlplane ... | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


def _identity_claim(args: Sequence[str]) -> str | None:
    """`--as` named an identity in earlier versions; an identity is now whoever signed in."""
    for arg in args:
        if arg == "--":
            break
        if arg == "--as" or arg.startswith("--as="):
            return (
                "`--as` is refused: no flag names an identity. Sign in as a team member with "
                "`mlplane auth login EMAIL`; act as a service account only through a CI trigger, "
                "or with --impersonate-service-account where IAM allows it. To ask whether "
                "someone may do something: `mlplane iam check --principal P ACTION`"
            )
    return None


def entrypoint() -> None:
    sys.exit(main())
