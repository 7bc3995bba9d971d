"""Signing in: which team members may (a user member of the project, directly or through a
group the project file lists), who the OS user's default is, and the credential files."""

from __future__ import annotations

import getpass

from mlplane.apis import signin
from mlplane.errors import ConfigError
from mlplane.model.principals import Principal
from mlplane.workflows.session import Session


def team_users(session: Session) -> list[str]:
    """Emails of the users the project file names (directly or as members of its groups)."""
    users: set[str] = set()
    authz = session.authz
    members = {m for ms in authz.policy.process_members.values() for m in ms}
    members |= set(authz.policy.admins)
    for member in members:
        if member.startswith("user:"):
            users.add(member.removeprefix("user:"))
    for group, emails in session.loaded.project.team.groups.items():
        if f"group:{group}" in members:
            users.update(e.lower() for e in emails)
    return sorted(users)


def is_team_user(session: Session, email: str) -> bool:
    authz = session.authz
    team = {m for ms in authz.policy.process_members.values() for m in ms}
    team |= set(authz.policy.admins)
    return bool(set(authz.members_of(Principal("user", email.lower()))) & team)


def default_account(session: Session) -> str:
    """The member mapped to the OS user: the one whose address's local part is the OS user's
    name, else the only user member."""
    users = team_users(session)
    os_user = getpass.getuser().lower()
    named = [u for u in users if u.partition("@")[0] == os_user]
    if len(named) == 1:
        return named[0]
    if len(users) == 1:
        return users[0]
    raise ConfigError(
        "argument", "EMAIL",
        f"name the member to sign in as (no member is mapped to OS user '{os_user}'; "
        f"members: {', '.join(users) or 'none'})",
    )  # fmt: skip


def login(session: Session, account: str | None) -> str:
    from mlplane.workflows import compose

    if session.provider == "gcp":
        raise ConfigError(
            "project.provider", "gcp",
            "on Google Cloud, sign in with `gcloud auth application-default login` "
            "(mlplane uses Application Default Credentials)",
        )  # fmt: skip
    email = (account or default_account(session)).lower()
    if not is_team_user(session, email):
        raise ConfigError(
            "argument", "EMAIL",
            f"{email} is not a member of project {session.project_id}'s team "
            f"({', '.join(team_users(session))})",
        )  # fmt: skip
    compose.login(email)
    return email


def accounts() -> tuple[list[str], str | None]:
    return signin.signed_in_accounts(), signin.active_account()
