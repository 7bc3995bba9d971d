"""`mlplane auth ...`: sign in as a member of the project's team, as gcloud signs a user in.

Every command then acts as whoever the signed-in credential belongs to; no flag or variable
names an identity. On `provider = "gcp"`, Application Default Credentials are used instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mlplane.cli.context import Context


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    subs = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", prog=parser.prog)
    p = subs.add_parser("login", help="sign in as a team member (default: the OS user's)")
    p.add_argument("email", nargs="?", metavar="EMAIL")
    p.set_defaults(run=run_login)
    p = subs.add_parser("list", help="signed-in accounts; * marks the active one")
    p.set_defaults(run=run_list)
    p = subs.add_parser("print-access-token", help="a current access token of the active account")
    p.set_defaults(run=run_token)
    p = subs.add_parser("revoke", help="sign an account out (default: the active one)")
    p.add_argument("email", nargs="?", metavar="EMAIL")
    p.set_defaults(run=run_revoke)


def run_login(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.signin import login

    email = login(ctx.session(), args.email)
    print(f"signed in as {email} (active account); `mlplane auth list`")
    return 0


def run_list(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows.signin import accounts

    names, active = accounts()
    for name in names:
        print(f"{'*' if name == active else ' '} {name}")
    if not names:
        print("no account signed in: `mlplane auth login`")
    return 0


def run_token(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.workflows import compose

    print(compose.access_token(ctx.session().api))
    return 0


def run_revoke(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.errors import ConfigError
    from mlplane.workflows import compose
    from mlplane.workflows.signin import accounts

    email = args.email or accounts()[1]
    if not email:
        raise ConfigError("argument", "EMAIL", "no active account to revoke")
    if not compose.revoke(email):
        raise ConfigError("argument", "EMAIL", f"{email} is not signed in here")
    print(f"revoked {email}")
    return 0
