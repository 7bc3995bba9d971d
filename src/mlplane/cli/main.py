"""The `mlplane` command.

argparse, with each command group in its own module imported only when invoked: `mlplane --help`
and `mlplane iam check` must start in a few times `python -c pass` (docs/decisions/0005-cli.md).
A command module defines `configure(parser, argv)` (argv: the arguments after the command, so
it can import subcommand modules lazily too), which sets `run(ctx, args) -> int` as a default.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from mlplane import __version__
from mlplane.cli.context import Context
from mlplane.errors import MlplaneError

# name -> (module, one-line help shown by `mlplane --help` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("mlplane.cli.init", "write a new mlplane.toml for a GCP project"),
    "iam": ("mlplane.cli.iam", "least-privilege IAM from the operational model"),
}


def _top_parser() -> argparse.ArgumentParser:
    width = max(len(n) for n in COMMANDS) + 2
    epilog = "commands:\n" + "\n".join(
        f"  {name:<{width}}{help_}" for name, (_, help_) in COMMANDS.items()
    )
    epilog += "\n\nRun `mlplane COMMAND --help` for a command's options."
    p = argparse.ArgumentParser(
        prog="mlplane",
        description="mlplane: the control plane for an ML team's Google Cloud project.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"mlplane {__version__}")
    p.add_argument(
        "-f",
        "--file",
        type=Path,
        metavar="FILE",
        help="project file (default: $MLPLANE_PROJECT, else the nearest mlplane.toml upward)",
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
    module_name, help_ = COMMANDS[ns.command]
    sub = argparse.ArgumentParser(prog=f"mlplane {ns.command}", description=help_)
    importlib.import_module(module_name).configure(sub, ns.args)
    args = sub.parse_args(ns.args)
    if not hasattr(args, "run"):
        sub.print_help()
        return 2
    try:
        code: int = args.run(Context(project_override=ns.file), args)
    except MlplaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


def entrypoint() -> None:
    sys.exit(main())
