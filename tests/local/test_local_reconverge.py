"""The agent's resources outlive the agent: written through to owner-only files, read back by the
next agent, which re-creates their runtime (groups at their size within the autoscaler's
bounds, with their replicas' names; instances by `scheduling.automaticRestart`) after killing
whole the process groups the killed agent left. A damaged file is one clear error."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mlplane.cli.main import main
from mlplane.errors import ConfigError
from mlplane.model.compute import (
    Autoscaler,
    AutoscalingPolicy,
    Instance,
    Metadata,
    MetadataItem,
    ResourceKey,
    Scheduling,
    ServiceAccount,
)
from mlplane.model.workload import workload_metadata
from mlplane.providers.local.agent.processes import (
    ProcessId,
    group_members,
    kill_group,
    kill_recorded_group,
)
from mlplane.providers.local.agent.records import RecordFiles
from mlplane.providers.local.agent.store import Observed, Record, RequestTrace
from mlplane.providers.local.control import find_agent, stop_agent
from mlplane.providers.local.paths import AgentPaths
from mlplane.providers.local.procfs import start_time
from tests.conftest import PROJECT_TOML
from tests.harness import Team, with_admin
from tests.local.local_helpers import (
    BOOT_DISK,
    EXPERIMENTATION,
    REPLICA,
    TRAINING_ADHOC,
    ZONE,
    assert_all_gone,
    create,
    group,
    health_check,
    pid_gone,
    processes,
    providers_as,
    resources,
    template,
    wait_until,
)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "mlplane.toml"
    path.write_text(with_admin(PROJECT_TOML))
    yield path
    stop_agent(path)


@pytest.fixture
def team(project: Path) -> Team:
    return Team(project, project.parent / "config")


def kill_agent(team: Team) -> None:
    handle = find_agent(team.project_file)
    assert handle is not None
    os.kill(handle.info.pid, signal.SIGKILL)
    assert_all_gone([handle.info.pid])


def replica_names(team: Team, mig: str, count: int) -> list[str]:
    def check() -> list[str] | None:
        names = sorted(
            v.name for v in processes(team) if v.group == mig and v.pid and v.status == "RUNNING"
        )
        return names if len(names) == count else None

    return wait_until(check, 20, f"{count} running replicas of {mig}")


# -- the files ---------------------------------------------------------------------------------


def test_records_round_trip_owner_only_and_a_damaged_file_is_one_clear_error(
    tmp_path: Path,
) -> None:
    files = RecordFiles(tmp_path / "resources")
    spec = health_check("rt-hc")
    trace = RequestTrace("rid-1", "operation-1", "create", "global", "insert", "x@y", 1.0, "7")
    rec = Record(
        spec,
        owner="serviceAccount:x@y",
        observed=Observed(status="RUNNING", port=8123),
        requests=(trace, replace(trace, request_id="rid-2", error=("invalid", "no", 400))),
    )
    files.save(rec)
    path = files.path(spec.key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    [back] = files.load()
    assert (back.spec, back.owner, back.id, back.observed, back.requests) == (
        spec,
        rec.owner,
        rec.id,
        rec.observed,
        rec.requests,
    )
    assert back.fingerprint == rec.fingerprint  # same generation, same spec

    (path.parent / f".{path.name}.tmp123").write_text("{half")  # a write the agent died in
    assert [r.key for r in files.load()] == [spec.key]
    assert not (path.parent / f".{path.name}.tmp123").exists()

    stored = json.loads(path.read_text())
    for damage, why in [
        ("{not json", "not JSON"),
        (
            json.dumps({**stored, "spec": {"name": "rt-hc", "colour": 1}}),
            "spec",
        ),
        (json.dumps({**stored, "name": "other"}), "name 'other'"),
        (json.dumps({**stored, "format": 9}), "format 9"),
    ]:
        good = path.read_text()
        path.write_text(damage)
        with pytest.raises(ConfigError) as info:
            files.load()
        message = str(info.value)
        assert str(path) in message and why in message and "move the file away" in message
        assert "\n" not in message
        path.write_text(good)


# -- process groups ----------------------------------------------------------------------------


def test_a_recorded_group_is_killed_whole_even_when_its_leader_is_gone() -> None:
    # A leader (its own session) starts a long-lived child, then exits, as a training runner
    # killed by PDEATHSIG leaves its job behind.
    proc = subprocess.Popen(
        ["/bin/sh", "-c", "sleep 300 & echo $!; sleep 0.5"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    leader = ProcessId(proc.pid, start_time(proc.pid) or 0)
    proc.wait()
    assert not leader.alive() and not pid_gone(child)
    assert [m.pid for m in group_members(leader)] == [child]
    assert kill_group(leader, signal.SIGKILL) is False  # what a sweep did before
    assert not pid_gone(child)
    # A record whose start time does not match (a recycled PID) is never acted on.
    assert kill_recorded_group(ProcessId(child, (start_time(child) or 0) + 1)) == 0
    assert kill_recorded_group(leader) == 1
    wait_until(lambda: pid_gone(child), 5, "the orphaned child killed")


# -- a killed agent's successor ----------------------------------------------------------------


def test_groups_come_back_at_their_size_within_the_autoscalers_bounds_with_their_names(
    project: Path, team: Team
) -> None:
    team.up()
    serving = providers_as(team, "serving")
    hc, tmpl = health_check("rc-hc"), template("rc-tmpl")
    auto = group("rc-auto-mig", tmpl, hc, size=1)
    scaler = Autoscaler(
        name="rc-auto-as",
        zone=ZONE,
        target=auto.link,
        autoscaling_policy=AutoscalingPolicy(
            min_num_replicas=1, max_num_replicas=2, mode="ONLY_SCALE_OUT"
        ),
    )
    create(serving, hc, tmpl, group("rc-mig", tmpl, hc, size=2), auto, scaler)
    names = replica_names(team, "rc-mig", 2)
    replica_names(team, "rc-auto-mig", 1)
    before = {(k, n) for k, n in resources(team) if k != "instance"}

    kill_agent(team)
    # As if its autoscaler had grown the group past a maximum lowered since: back within bounds.
    paths = AgentPaths.for_project(project)
    path = RecordFiles(paths.resources).path(ResourceKey("instanceGroupManager", "rc-auto-mig"))
    data = json.loads(path.read_text())
    data["observed"]["targetSize"] = 9
    path.write_text(json.dumps(data))
    team.up()

    assert replica_names(team, "rc-mig", 2) == names
    assert len(replica_names(team, "rc-auto-mig", 2)) == 2
    assert {(k, n) for k, n in resources(team) if k != "instance"} == before
    for kind in paths.resources.iterdir():
        assert stat.S_IMODE(kind.stat().st_mode) == 0o700
        for file in kind.iterdir():
            assert stat.S_IMODE(file.stat().st_mode) == 0o600


def _instance(name: str, account: str, command: object = REPLICA, **kw: object) -> Instance:
    items = workload_metadata(command)  # type: ignore[arg-type]
    return Instance(
        name=name,
        zone=ZONE,
        machine_type="e2-small",
        disks=(BOOT_DISK,),
        service_accounts=(ServiceAccount(email=account),),
        metadata=Metadata(items=tuple(MetadataItem(key=k, value=v) for k, v in items.items())),
        **kw,  # type: ignore[arg-type]
    )


def test_instances_restart_or_stay_terminated_by_their_scheduling(
    project: Path, team: Team
) -> None:
    team.up()
    alice = providers_as(team, "alice@acme.com")
    create(
        alice,
        _instance("nb-alice-back", EXPERIMENTATION),
        _instance("train-x-stays", TRAINING_ADHOC, scheduling=Scheduling(automatic_restart=False)),
        _instance("nb-alice-ended", EXPERIMENTATION, ("python", "-c", "raise SystemExit(3)")),
    )

    def view(name: str) -> tuple[str, int | None, int | None] | None:
        found = [v for v in processes(team) if v.name == name]
        return (found[0].status, found[0].pid, found[0].port) if found else None

    wait_until(lambda: view("nb-alice-ended") == ("TERMINATED", None, None), 15, "ended")
    running = {n: wait_until(lambda n=n: view(n) if view(n) and view(n)[1] else None, 15, n)
               for n in ("nb-alice-back", "train-x-stays")}  # fmt: skip
    kill_agent(team)
    for _, pid, _ in running.values():
        assert pid is not None
        assert_all_gone([pid])
    team.up()

    back = wait_until(lambda: view("nb-alice-back"), 10, "nb-alice-back")
    assert back[0] == "RUNNING" and back[1] != running["nb-alice-back"][1]
    assert back[2] == running["nb-alice-back"][2]  # the same address (port)
    assert view("train-x-stays") == ("TERMINATED", None, None)
    log = AgentPaths.for_project(project).logs / "train-x-stays.log"
    assert "scheduling.automaticRestart is false: the instance stays TERMINATED" in log.read_text()
    assert view("nb-alice-ended") == ("TERMINATED", None, None)
    again = providers_as(team, "alice@acme.com").for_kind("instance")  # the API moved: new port
    assert again.get(ResourceKey("instance", "nb-alice-ended")) is not None


def test_up_with_a_damaged_resource_file_names_it_and_starts_once_it_is_moved(
    project: Path, team: Team, capsys: pytest.CaptureFixture[str]
) -> None:
    team.up()
    create(providers_as(team, "serving"), health_check("dmg-hc"), health_check("ok-hc"))
    kill_agent(team)
    paths = AgentPaths.for_project(project)
    damaged = RecordFiles(paths.resources).path(ResourceKey("healthCheck", "dmg-hc"))
    damaged.write_text('{"format": 1, "kind": "healthCheck"')
    with team.environment():
        assert main(["-f", str(project), "up"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(damaged) in err and "move the file away" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert find_agent(project) is None

    damaged.rename(paths.root / "dmg-hc.json.bad")
    team.up()
    names = {n for k, n in resources(team) if k == "healthCheck"}
    assert names == {"ok-hc"}


def test_down_removes_the_records_and_the_next_agent_starts_empty(
    project: Path, team: Team
) -> None:
    team.up()
    create(providers_as(team, "serving"), health_check("gone-hc"))
    paths = AgentPaths.for_project(project)
    assert any(paths.resources.rglob("*.json"))
    team.down()
    assert not paths.resources.exists()
    team.up()
    assert resources(team) == set()


def test_endpoints_configs_rollouts_and_enabled_services_round_trip(tmp_path: Path) -> None:
    from mlplane.model.compute import EndpointsConfig, OpenApiDocument
    from mlplane.providers.local.agent.surfaces.endpoints_state import (
        EndpointsState,
        RolloutRecord,
        ServiceConfig,
    )

    doc = {"swagger": "2.0", "info": {"title": "models", "version": "1"}, "paths": {},
           "host": "models.example"}  # fmt: skip
    files = [{"filePath": "openapi.json", "fileContents": json.dumps(doc), "fileType": 2}]

    def read(name: str, stored: list[dict[str, object]]) -> EndpointsConfig:
        text = json.loads(str(stored[0]["fileContents"]))
        return EndpointsConfig(name=name, openapi=OpenApiDocument.model_validate(text))

    state = EndpointsState(tmp_path / "sm", ("compute.googleapis.com",))
    spec = read("models.example", files)
    state.add_config("models.example", ServiceConfig("2026-01-01r0", spec, files, 1.0))
    state.add_rollout("models.example", RolloutRecord("2026-01-01r0-0", "2026-01-01r0", "a@b"))
    state.enable("models.example")

    back = EndpointsState(tmp_path / "sm", ("compute.googleapis.com",))
    back.load(read)
    assert back.configs == state.configs and back.rollouts == state.rollouts
    assert back.enabled == {"compute.googleapis.com", "models.example"}
    rollouts = tmp_path / "sm" / "models.example" / "rollouts.json"
    assert stat.S_IMODE(rollouts.stat().st_mode) == 0o600
    rollouts.write_text('{"not": "a list"}')
    with pytest.raises(ConfigError, match=r"rollouts\.json: cannot be read back"):
        EndpointsState(tmp_path / "sm").load(read)


def test_the_agent_view_says_what_the_agent_holds_and_an_older_agent_nothing_missing() -> None:
    from mlplane.providers.replica_view import AgentView

    view = AgentView.from_json({"processes": [], "resources": [["urlMap", "mlplane-urlmap"]]})
    assert view.holds("urlMap", "mlplane-urlmap") and not view.holds("urlMap", "other")
    older = AgentView.from_json({"processes": []})  # an agent from before it listed them
    assert older.resources is None and older.holds("urlMap", "other")
