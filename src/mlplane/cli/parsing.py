"""The argparse side of `mlplane`: the top-level parser and the classes every command's parser
uses. Imported by `cli.main` for every command line but the few everyday reads it parses itself
(decision 0017); command modules reach argparse only through the parser they are given.
"""

from __future__ import annotations

import argparse
import os

from mlplane import __version__

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (start-up path)
if TYPE_CHECKING:
    from typing import Any


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


def top_parser(commands: dict[str, tuple[str, str]]) -> argparse.ArgumentParser:
    """`mlplane [options] COMMAND ARGS...`; `commands`: name -> (module, one-line help)."""
    width = max(len(n) for n in commands) + 2
    epilog = "commands:\n" + "\n".join(
        f"  {name:<{width}}{help_}" for name, (_, help_) in commands.items()
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


def command_parser(command: str, help_: str) -> Parser:
    """The parser a command module's `configure` fills in."""
    return Parser(prog=f"mlplane {command}", description=help_)
