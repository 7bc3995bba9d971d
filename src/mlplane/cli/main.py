"""The `mlplane` command.

argparse (`cli.parsing`), with each command group in its own module imported only when invoked:
`mlplane --help` and `mlplane iam check` must start in a few times `python -c pass`
(docs/decisions/0005-cli.md). A command module defines `configure(parser, argv)` (argv: the
arguments after the command, so it can import subcommand modules lazily too), which sets
`run(ctx, args) -> int` as a default.

The everyday reads in LEAN (`status`, `serve list`, `train list`, `notebook list`, with `-f FILE`
and `--format`) are recognised without argparse, whose import (with re and enum) would be a
third of their start-up (decision 0017): `lean_parse` takes only spellings whose meaning under
argparse is plain and leaves everything else (help, errors, abbreviations, repeated or other
options) to argparse. tests/test_cli_lean.py holds the two parses equal.
"""

from __future__ import annotations

import os
import sys

from mlplane.cli.context import Context
from mlplane.errors import MlplaneError

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (start-up path)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
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


# (command, subcommand) -> (module, its run function, what else argparse's namespace holds)
LEAN: dict[tuple[str, ...], tuple[str, str, dict[str, object]]] = {
    ("status",): ("mlplane.cli.agent", "run_status", {"timeout": 30.0}),
    ("serve", "list"): ("mlplane.cli.serve", "run_list", {}),
    ("train", "list"): ("mlplane.cli.train", "run_list", {}),
    ("notebook", "list"): ("mlplane.cli.notebook", "run_list", {}),
}
FORMATS = ("table", "json")  # their --format choices; the first is the default


class Args:
    """The namespace argparse builds for a LEAN command line (its attributes, no argparse)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # for mypy: attributes are set in __init__
        raise AttributeError(name)


def lean_parse(argv: Sequence[str]) -> tuple[str | None, Args] | None:
    """(-f FILE or None, the parsed arguments) of a LEAN command line; None for anything else,
    which is argparse's to parse (or to refuse)."""
    args = list(argv)
    file = None
    if len(args) >= 2 and args[0] in ("-f", "--file") and _plain(args[1]):
        file, args = args[1], args[2:]
    elif args and args[0].startswith("--file=") and _plain(args[0][7:]):
        file, args = args[0][7:], args[1:]
    fmt = FORMATS[0]
    if len(args) >= 2 and args[-2] == "--format" and args[-1] in FORMATS:
        fmt, args = args[-1], args[:-2]
    elif args and args[-1].startswith("--format=") and args[-1][9:] in FORMATS:
        fmt, args = args[-1][9:], args[:-1]
    entry = LEAN.get(tuple(args))
    if entry is None:
        return None
    module, function, rest = entry
    __import__(module)  # not importlib: its package imports warnings
    run = getattr(sys.modules[module], function)
    return file, Args(**rest, fmt=fmt, run=run)


def _plain(value: str) -> bool:
    """A value argparse takes as it is: not empty, not option-like."""
    return bool(value) and not value.startswith("-")


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    lean = lean_parse(args)
    if lean is None:
        return main_argparse(args)
    file, parsed = lean
    return run(parsed.run, parsed, file, None)


def main_argparse(argv: Sequence[str]) -> int:
    """`mlplane ARGS...` parsed by argparse, as every command line but LEAN's is."""
    parsed = parse_argparse(argv)
    if isinstance(parsed, int):
        return parsed
    file, impersonate, args = parsed
    return run(args.run, args, file, impersonate)


def parse_argparse(argv: Sequence[str]) -> tuple[str | None, str | None, Any] | int:
    """(-f FILE, --impersonate-service-account SA, the command's namespace), or the exit code
    when there is nothing to run (help was printed; a refusal). argparse exits on bad usage."""
    import importlib

    from mlplane.cli.parsing import command_parser, top_parser

    top = top_parser(COMMANDS)
    ns = top.parse_args(list(argv))
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
    sub = command_parser(ns.command, help_)
    importlib.import_module(module_name).configure(sub, ns.args)
    args = sub.parse_args(ns.args)
    if not hasattr(args, "run"):
        sub.print_help()
        return 2
    return ns.file, ns.impersonate, args


def run(
    command: Callable[[Context, Any], int], args: Any, file: str | None, impersonate: str | None
) -> int:
    """Run a parsed command line: its errors as one line on stderr and their exit codes."""
    try:
        ctx = Context(file, impersonate)
        saved = os.environ.get("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE")
        try:
            ctx.impersonate_now()
            code: int = command(ctx, args)
        finally:  # main() may run in-process (tests, quickstart): leave the environment as found
            if impersonate:
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
