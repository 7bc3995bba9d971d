"""One running team per test module, for tests that act by tokens (see tests/harness.py).

`team_fixture(...)` makes a module-scoped `Team` fixture: the project file (the standard test
project with `admin@acme.com` as its admin) in a directory of the module's own, its agent up for
the module's tests and stopped at teardown, and team members signed in on the module's config
directory with `alice@acme.com` (a team user) as the active account: the identity a command
takes when nothing else names one.

Every user a module acts as should be listed in `users=`: signing someone in for the first time
makes them the active account, which would change the default identity of the tests after.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlplane.providers.local import signin
from tests.conftest import PROJECT_TOML, REPO
from tests.harness import ADMIN, AMBIENT, Team, with_admin

ALICE = "alice@acme.com"  # a team user, directly in [team] principals
BOB = "bob@acme.com"  # a team user through the ml@acme.com group
OUTSIDER = "mallory@example.com"  # signed in on this machine, but not on the project's team
DATA_STORES = ("buckets", "secrets", "logs")  # under .mlplane: the local data backends


def team_fixture(
    toml: str = PROJECT_TOML, users: tuple[str, ...] = (BOB,), default: str = ALICE
) -> Callable[..., Iterator[Team]]:
    """A module-scoped fixture: `team = team_fixture()` in a test module."""

    @pytest.fixture(scope="module")
    def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
        root = tmp_path_factory.mktemp("team")
        project_file = root / "project" / "mlplane.toml"
        project_file.parent.mkdir()
        project_file.write_text(with_admin(toml))
        team = Team(project_file, root / "config")
        team.up()
        try:
            for user in (ADMIN, *users, default):
                team.login(user)
            activate(team, default)
            yield team
        finally:
            team.down()

    return team


def activate(team: Team, email: str) -> None:
    """Make `email` (signed in) the active account of the team's config directory."""
    with team.environment():
        signin.make_active(email)


def wipe(project_file: Path, stores: tuple[str, ...] = DATA_STORES) -> Path:
    """Empty the project's local data stores (not the agent's state): a fresh project for the
    next test without restarting the agent."""
    for name in stores:
        shutil.rmtree(project_file.parent / ".mlplane" / name, ignore_errors=True)
    return project_file


def process_env(team: Team, who: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a subprocess acting as `who` (a user's email or an identity id), or,
    when `who` is None, as the active signed-in account: this process's environment without
    any identity or mlplane setting of its own, and mlplane importable from this checkout."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in AMBIENT and not k.startswith(("MLPLANE_", "GCE_", "CLOUDSDK_"))
    }
    base["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p
    )
    who_env = team.env(who) if who else {"MLPLANE_CONFIG_DIR": str(team.config_dir)}
    return base | who_env | extra
