"""`mlplane up` / `down` / `status`: one agent per project, idempotent, race-safe, no leaks."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlplane.cli.main import main
from mlplane.errors import MlplaneError
from mlplane.model.compute import ResourceKey
from mlplane.providers.local.client import AgentAuthError, AgentClient, local_providers
from mlplane.providers.local.control import find_agent, start_agent, stop_agent
from mlplane.providers.local.paths import AgentPaths
from tests.conftest import PROJECT_TOML
from tests.local.local_helpers import (
    SERVING,
    assert_all_gone,
    create,
    delete,
    group,
    health_check,
    running_pids,
    template,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A project of its own; whatever agent a test started is stopped, even if it failed."""
    path = tmp_path / "mlplane.toml"
    path.write_text(PROJECT_TOML)
    yield path
    stop_agent(path)


def test_up_is_idempotent_status_lists_and_down_cleans_up(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-f", str(project), "up"]) == 0
    first = capsys.readouterr().out
    assert "agent started: pid" in first
    assert main(["-f", str(project), "up"]) == 0
    second = capsys.readouterr().out
    assert "already running" in second
    handle = find_agent(project)
    assert (
        handle is not None
        and f"pid {handle.info.pid}" in first
        and f"pid {handle.info.pid}" in second
    )

    paths = AgentPaths.for_project(project)
    assert stat.S_IMODE(paths.token.stat().st_mode) == 0o600
    assert paths.root == project.parent / ".mlplane" / "agent"

    assert main(["-f", str(project), "status", "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["pid"] == handle.info.pid and status["project"] == "acme-ml"

    assert main(["-f", str(project), "down"]) == 0
    assert f"agent stopped: pid {handle.info.pid}" in capsys.readouterr().out
    assert_all_gone([handle.info.pid])
    assert not paths.info.exists() and not paths.token.exists() and not paths.pid_file.exists()
    assert main(["-f", str(project), "down"]) == 0
    assert "no agent running" in capsys.readouterr().out
    assert main(["-f", str(project), "status"]) == 4  # AgentNotRunning


def test_concurrent_ups_start_exactly_one_agent(project: Path) -> None:
    results = []

    def up() -> None:
        results.append(start_agent(project))

    threads = [threading.Thread(target=up) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len({r.agent.info.pid for r in results}) == 1
        assert sum(r.started for r in results) == 1
    finally:
        stop_agent(project)
    assert_all_gone([results[0].agent.info.pid])


def test_a_second_agent_process_refuses_to_start(project: Path) -> None:
    import subprocess
    import sys

    start_agent(project)
    try:
        argv = [sys.executable, "-m", "mlplane.providers.local.agent", "--project", str(project)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert proc.returncode == 3
        assert "another agent holds" in proc.stderr
        assert find_agent(project) is not None
    finally:
        stop_agent(project)


def test_down_stops_every_supervised_process_and_a_killed_agent_leaks_nothing(
    project: Path,
) -> None:
    handle = start_agent(project).agent
    providers = local_providers(project, SERVING)
    hc = health_check("leak-hc")
    tmpl = template("leak-tmpl")
    create(providers, hc, tmpl, group("leak-mig", tmpl, hc, size=2))
    pids = running_pids(handle.client(), 2)
    result = stop_agent(project)
    assert result.pid == handle.info.pid and not result.forced
    assert_all_gone([handle.info.pid, *pids])

    # kill -9 of the agent: its replicas die with it (PDEATHSIG); `down` then finds no agent
    handle = start_agent(project).agent
    create(local_providers(project, SERVING), hc, tmpl, group("leak-mig", tmpl, hc, size=2))
    pids = running_pids(handle.client(), 2)
    os.kill(handle.info.pid, signal.SIGKILL)
    assert_all_gone([handle.info.pid, *pids])
    assert stop_agent(project).pid is None
    assert not AgentPaths.for_project(project).info.exists()


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLANE_AGENT_STOP_GRACE_SEC", "0.5")
    handle = start_agent(project).agent
    providers = local_providers(project, SERVING)
    hc, tmpl = health_check("stub-hc"), template("stub-tmpl", env={"IGNORE_TERM": "1"})
    create(providers, hc, tmpl, group("stub-mig", tmpl, hc, size=1))
    client = handle.client()
    (pid,) = running_pids(client, 1)  # and healthy: it has installed its SIGTERM handler
    wait_until(lambda: client.status().replicas[0].health == "HEALTHY", 10, "a healthy replica")
    started = time.monotonic()
    delete(providers, ResourceKey("instanceGroupManager", "stub-mig"))
    assert 0.5 <= time.monotonic() - started < 5.0
    assert_all_gone([pid])
    assert "ignored SIGTERM for 0.5s: SIGKILL" in handle.paths.log.read_text()


def test_an_agent_whose_state_directory_is_deleted_stops_with_its_processes(
    project: Path,
) -> None:
    import shutil

    handle = start_agent(project).agent
    providers = local_providers(project, SERVING)
    hc, tmpl = health_check("orphan-hc"), template("orphan-tmpl")
    create(providers, hc, tmpl, group("orphan-mig", tmpl, hc, size=1))
    pids = running_pids(handle.client(), 1)
    shutil.rmtree(project.parent / ".mlplane")
    assert_all_gone([handle.info.pid, *pids], timeout=10)


def test_api_requires_the_token_and_changes_require_a_principal(project: Path) -> None:
    handle = start_agent(project).agent
    try:
        wrong = AgentClient(handle.info.base_url, "not-the-token", SERVING)
        with pytest.raises(AgentAuthError):
            wrong.status()
        with pytest.raises(AgentAuthError):
            wrong.list("healthCheck")
        operator = handle.client()  # the token, but no principal: reads only
        assert operator.status().pid == handle.info.pid
        assert operator.list("healthCheck") == []
        with pytest.raises(MlplaneError, match="a change needs the acting principal"):
            operator.create(health_check("anon-hc"), "r1")
        assert local_providers(project, SERVING).for_kind("healthCheck").list() == []
    finally:
        stop_agent(project)
    assert_all_gone([handle.info.pid])
