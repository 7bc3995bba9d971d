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

from mlplane.apis.credentials import StaticToken
from mlplane.cli.main import main
from mlplane.model.compute import ResourceKey
from mlplane.providers.gcp.client import GoogleApis, Unauthorized
from mlplane.providers.local.control import find_agent, start_agent, stop_agent
from mlplane.providers.local.paths import AgentPaths
from tests.conftest import PROJECT_TOML
from tests.harness import ADMIN, Team, with_admin
from tests.local.local_helpers import (
    assert_all_gone,
    create,
    delete,
    group,
    health_check,
    processes,
    providers_as,
    running_pids,
    template,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A project of its own; whatever agent a test started is stopped, even if it failed."""
    path = tmp_path / "mlplane.toml"
    path.write_text(with_admin(PROJECT_TOML))
    yield path
    stop_agent(path)


@pytest.fixture
def team(project: Path) -> Team:
    return Team(project, project.parent / "config")


def test_up_is_idempotent_status_lists_and_down_cleans_up(
    project: Path, team: Team, capsys: pytest.CaptureFixture[str]
) -> None:
    with team.environment():  # the agent reads this machine's sign-ins from its config dir
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
    assert paths.root == project.parent / ".mlplane" / "agent"
    assert stat.S_IMODE(paths.root.stat().st_mode) == 0o700

    with team.acting(ADMIN):
        assert main(["-f", str(project), "status", "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert "local agent running" in status["summary"] and "acme-ml" in status["summary"]
    assert stat.S_IMODE(paths.tokens.stat().st_mode) == 0o600  # the sign-in's token, hashed
    # The admin's access token is cached in its config dir; a token the agent refuses (here a
    # forged one) is replaced by a fresh exchange, and status still shows the processes.
    cache = team.config_dir / "access_tokens.json"
    entries = json.loads(cache.read_text())
    assert len(entries) == 1
    [entry] = entries.values()
    entry["token"] = "forged"
    cache.write_text(json.dumps(entries))
    with team.acting(ADMIN):
        assert main(["-f", str(project), "status", "--format", "json"]) == 0
    assert "processes not shown" not in capsys.readouterr().out
    [entry] = json.loads(cache.read_text()).values()
    assert entry["token"] != "forged"

    assert main(["-f", str(project), "down"]) == 0
    assert f"agent stopped: pid {handle.info.pid}" in capsys.readouterr().out
    assert_all_gone([handle.info.pid])
    assert not paths.info.exists() and not paths.pid_file.exists()
    assert main(["-f", str(project), "down"]) == 0
    assert "no agent running" in capsys.readouterr().out
    with team.acting(ADMIN):
        assert main(["-f", str(project), "status"]) == 0  # recorded state; the agent is down
    assert "local agent NOT running" in capsys.readouterr().out


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
    project: Path, team: Team
) -> None:
    handle = team.up()
    providers = providers_as(team, "serving")
    hc = health_check("leak-hc")
    tmpl = template("leak-tmpl")
    create(providers, hc, tmpl, group("leak-mig", tmpl, hc, size=2))
    pids = running_pids(team, 2)
    result = stop_agent(project)
    assert result.pid == handle.info.pid and not result.forced
    assert_all_gone([handle.info.pid, *pids])

    # kill -9 of the agent: its replicas die with it (PDEATHSIG); `down` then finds no agent
    handle = team.up()
    create(providers_as(team, "serving"), hc, tmpl, group("leak-mig", tmpl, hc, size=2))
    pids = running_pids(team, 2)
    os.kill(handle.info.pid, signal.SIGKILL)
    assert_all_gone([handle.info.pid, *pids])
    assert stop_agent(project).pid is None
    assert not AgentPaths.for_project(project).info.exists()


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(
    project: Path, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLANE_AGENT_STOP_GRACE_SEC", "0.5")
    handle = team.up()
    providers = providers_as(team, "serving")
    hc, tmpl = health_check("stub-hc"), template("stub-tmpl", env={"IGNORE_TERM": "1"})
    create(providers, hc, tmpl, group("stub-mig", tmpl, hc, size=1))
    (pid,) = running_pids(team, 1)  # and healthy: it has installed its SIGTERM handler
    wait_until(lambda: processes(team)[0].health == "HEALTHY", 10, "a healthy replica")
    started = time.monotonic()
    delete(providers, ResourceKey("instanceGroupManager", "stub-mig"))
    assert 0.5 <= time.monotonic() - started < 5.0
    assert_all_gone([pid])
    assert "ignored SIGTERM for 0.5s: SIGKILL" in handle.paths.log.read_text()


def test_an_agent_whose_state_directory_is_deleted_stops_with_its_processes(
    project: Path, team: Team
) -> None:
    import shutil

    handle = team.up()
    providers = providers_as(team, "serving")
    hc, tmpl = health_check("orphan-hc"), template("orphan-tmpl")
    create(providers, hc, tmpl, group("orphan-mig", tmpl, hc, size=1))
    pids = running_pids(team, 1)
    # `rm -rf` while the agent still writes (its log, a record as it stops) may leave a file
    # behind; what matters is that the agent notices and stops with its processes
    shutil.rmtree(project.parent / ".mlplane", ignore_errors=True)
    assert_all_gone([handle.info.pid, *pids], timeout=10)
    shutil.rmtree(project.parent / ".mlplane", ignore_errors=True)


def test_every_api_call_needs_a_token_the_agent_issued(project: Path, team: Team) -> None:
    handle = team.up()
    try:
        forged = GoogleApis(handle.endpoints, StaticToken("ya29.forged", "a forged token"))
        with pytest.raises(Unauthorized, match="invalid authentication credentials"):
            forged.call("compute.healthChecks.list", {"project": "acme-ml"})
        admin, serving = providers_as(team, ADMIN), providers_as(team, "serving")
        assert admin.for_kind("healthCheck").list() == []
        # the serving account's token (obtained by the admin through generateAccessToken) and
        # the admin's sign-in token are both the token authority's
        create(serving, health_check("tok-hc"))
        assert [o.spec.name for o in admin.for_kind("healthCheck").list()] == ["tok-hc"]
    finally:
        stop_agent(project)
    assert_all_gone([handle.info.pid])
