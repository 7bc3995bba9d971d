"""Fixtures of the local-provider tests: a project directory with a running agent per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlplane.providers.local.client import local_providers
from mlplane.providers.local.control import AgentHandle, start_agent, stop_agent
from mlplane.providers.registry import ProviderSet
from tests.conftest import PROJECT_TOML
from tests.local.local_helpers import SERVING, assert_all_gone


@pytest.fixture(scope="module")
def local_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("project") / "mlplane.toml"
    path.write_text(PROJECT_TOML)
    return path


@pytest.fixture(scope="module")
def agent(local_project: Path) -> Iterator[AgentHandle]:
    """A running agent for the module; at the end, `down` must leave no process behind."""
    handle = start_agent(local_project).agent
    yield handle
    try:
        pids = [r.pid for r in handle.client().status().replicas if r.pid]
    except Exception:
        pids = []
    stop_agent(local_project)
    assert_all_gone([handle.info.pid, *pids])


@pytest.fixture(scope="module")
def serving(local_project: Path, agent: AgentHandle) -> ProviderSet:
    """The local providers acting as the serving service account (the deploy trigger's)."""
    return local_providers(local_project, SERVING)
