"""`mlplane secrets list | get | set | disable | enable | destroy`: the project's secrets, as
whoever the caller's credentials belong to (the signed-in user; in a workload, its instance's
service account).

`get` writes the value, exactly as stored, to stdout only (it was asked for). `set` never takes
the value as an argument (it would land in shell history and `ps`): `--from-file F` or `--stdin`
(a prompt without echo when stdin is a terminal).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mlplane.cli.context import Context, add_dry_run, emit_json

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (start-up path)
if TYPE_CHECKING:
    from mlplane.apis.request import DryRunLog
    from mlplane.data.secrets import Secrets

_NAME_HELP = "the secret's id: 1 to 255 letters, digits, '-' or '_'"


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    subs = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", prog=parser.prog)

    p = subs.add_parser("list", help="secrets and their versions (never values)")
    p.add_argument("--format", dest="fmt", choices=("table", "json"), default="table")
    p.set_defaults(run=run_list)

    p = subs.add_parser("get", help="print a version's value to stdout, exactly as stored")
    p.add_argument("name", metavar="NAME", help=_NAME_HELP)
    p.add_argument("--version", default="latest", metavar="N", help="a number or 'latest'")
    p.set_defaults(run=run_get)

    p = subs.add_parser("set", help="add a version (creating the secret if it is new)")
    p.add_argument("name", metavar="NAME", help=_NAME_HELP)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-file", metavar="FILE", help="read the value from FILE, exactly")
    src.add_argument(
        "--stdin",
        action="store_true",
        help="read the value from stdin (a prompt without echo on a terminal)",
    )
    add_dry_run(p)
    p.set_defaults(run=run_set)

    for verb, help_ in (
        ("disable", "disable a version ('latest' then skips it; enable undoes it)"),
        ("enable", "enable a disabled version"),
        ("destroy", "erase a version's value for good (its number and metadata stay)"),
    ):
        p = subs.add_parser(verb, help=help_)
        p.add_argument("name", metavar="NAME", help=_NAME_HELP)
        p.add_argument("--version", required=True, metavar="N", help="a version number")
        add_dry_run(p)
        p.set_defaults(run=run_state, verb=verb)


def _open(ctx: Context, args: argparse.Namespace) -> Secrets:
    from mlplane.data.secrets import open_secrets

    return open_secrets(ctx.project_path)


def _dry_run(secrets: Secrets) -> DryRunLog:
    from mlplane.apis.request import DryRunLog

    return DryRunLog(str(secrets.principal))


def run_list(ctx: Context, args: argparse.Namespace) -> int:
    infos = _open(ctx, args).list()
    if args.fmt == "json":
        emit_json(
            [
                {"name": i.name, "latest": i.latest, "versions": [v.__dict__ for v in i.versions]}
                for i in infos
            ]
        )
        return 0
    if not infos:
        print("no secrets")
        return 0
    width = max(len(i.name) for i in infos)
    print(f"{'NAME':<{width}}  LATEST  VERSIONS  UPDATED")
    for i in infos:
        created = i.versions[-1].created if i.versions else ""
        latest = "-" if i.latest is None else str(i.latest)
        print(f"{i.name:<{width}}  {latest:<6}  {len(i.versions):<8}  {created}")
    return 0


def run_get(ctx: Context, args: argparse.Namespace) -> int:
    value = _open(ctx, args).get(args.name, args.version)
    sys.stdout.flush()
    sys.stdout.buffer.write(value.reveal())
    sys.stdout.buffer.flush()
    return 0


def _read_value(args: argparse.Namespace) -> bytes:
    from mlplane.errors import ConfigError

    if args.from_file:
        try:
            with open(args.from_file, "rb") as f:
                return f.read()
        except OSError as exc:
            raise ConfigError("--from-file", "", f"{args.from_file}: {exc.strerror}") from None
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"value of {args.name} (not echoed): ").encode()
    return sys.stdin.buffer.read()


def run_set(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.data.secrets import SecretValue, check_name

    check_name(args.name, "NAME")
    secrets = _open(ctx, args)
    if args.dry_run:
        log = _dry_run(secrets)
        secrets.rehearse_set(args.name, SecretValue(_read_value(args)), log)
        print(log.render())
        return 0
    version = secrets.set(args.name, SecretValue(_read_value(args)))
    print(f"{args.name}: added version {version.version}", file=sys.stderr)
    return 0


def run_state(ctx: Context, args: argparse.Namespace) -> int:
    secrets = _open(ctx, args)
    if args.dry_run:
        log = _dry_run(secrets)
        state = {"enable": "enabled", "disable": "disabled", "destroy": "destroyed"}[args.verb]
        secrets.rehearse_state(args.name, args.version, state, log)
        print(log.render())
        return 0
    version = getattr(secrets, args.verb)(args.name, args.version)
    print(f"{args.name}: version {version.version} {version.state}", file=sys.stderr)
    return 0
