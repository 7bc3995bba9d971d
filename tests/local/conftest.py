"""Fixtures of the local-provider tests: a project directory with a running agent per module,
and providers acting (by token) as the serving service account."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlplane.providers.local.control import AgentHandle
from mlplane.providers.registry import ProviderSet
from tests.conftest import PROJECT_TOML
from tests.harness import Team, with_admin
from tests.local.local_helpers import assert_all_gone, process_pids, providers_as


@pytest.fixture(scope="module")
def local_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("project") / "mlplane.toml"
    path.write_text(with_admin(PROJECT_TOML))
    return path


@pytest.fixture(scope="module")
def team(local_project: Path) -> Iterator[Team]:
    """A running agent for the module; at the end, `down` must leave no process behind."""
    team = Team(local_project, local_project.parent / "config")
    handle = team.up()
    yield team
    try:
        pids = process_pids(team)
    except Exception:
        pids = []
    team.down()
    assert_all_gone([handle.info.pid, *pids])


@pytest.fixture(scope="module")
def agent(team: Team) -> AgentHandle:
    assert team.handle is not None
    return team.handle


@pytest.fixture(scope="module")
def serving(team: Team) -> ProviderSet:
    """The providers acting as the serving service account (the deploy trigger's), with a token
    the project's admin obtained for it."""
    return providers_as(team, "serving")
