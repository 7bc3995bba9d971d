"""Managed instance groups on the local agent: real replica processes, health, autohealing."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from mlplane.errors import PermissionDenied
from mlplane.model.compute import ResourceKey
from mlplane.providers.base import ManagedInstance
from mlplane.providers.errors import AlreadyExists, InvalidRequest, ResourceInUse
from mlplane.providers.local.control import AgentHandle
from mlplane.providers.registry import ProviderSet
from tests.harness import Team
from tests.local.local_helpers import (
    assert_all_gone,
    create,
    delete,
    group,
    health_check,
    port_released,
    processes,
    providers_as,
    run,
    template,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


def managed(providers: ProviderSet, name: str) -> list[ManagedInstance]:
    provider = providers.for_kind("instanceGroupManager")
    return list(provider.list_managed_instances(ResourceKey("instanceGroupManager", name)))  # type: ignore[attr-defined]


def healthy(team: Team, name: str, count: int, timeout: float = 15.0) -> dict[str, tuple[int, int]]:
    """{replica name: (pid, port)} once exactly `count` replicas run and are HEALTHY."""

    def check() -> dict[str, tuple[int, int]] | None:
        views = [r for r in processes(team) if r.group == name]
        ok = [r for r in views if r.health == "HEALTHY" and r.status == "RUNNING"]
        if len(views) == count and len(ok) == count:
            return {r.name: (r.pid, r.port) for r in ok}  # type: ignore[misc]
        return None

    return wait_until(check, timeout, f"{count} healthy replicas of {name}")


def get_json(port: int, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        data: dict[str, object] = json.loads(resp.read())
        return data


def test_group_brings_n_replicas_to_healthy_each_on_its_own_port(
    serving: ProviderSet, team: Team
) -> None:
    hc, tmpl = health_check("n-hc"), template("n-tmpl")
    create(serving, hc, tmpl, group("n-mig", tmpl, hc, size=3))
    replicas = healthy(team, "n-mig", 3)
    ports = {port for _, port in replicas.values()}
    assert len(ports) == 3
    for name, (pid, port) in replicas.items():
        assert name.startswith("n-") and len(name) == len("n-") + 4
        who = get_json(port, "/whoami")
        assert who == {"instance": name, "port": port, "pid": pid}
    listed = managed(serving, "n-mig")
    assert {m.name for m in listed} == set(replicas)
    assert {m.health_state for m in listed} == {"HEALTHY"}


def test_killed_replica_is_replaced_within_two_health_check_intervals(
    serving: ProviderSet, team: Team
) -> None:
    interval = 2
    hc, tmpl = health_check("kill-hc", interval=interval), template("kill-tmpl")
    create(serving, hc, tmpl, group("kill-mig", tmpl, hc, size=2))
    before = healthy(team, "kill-mig", 2)
    victim, (pid, _) = sorted(before.items())[0]
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    def replaced() -> dict[str, tuple[int, int]] | None:
        now = healthy(team, "kill-mig", 2, timeout=2 * interval)
        return now if now[victim][0] != pid else None

    after = wait_until(replaced, 2 * interval, f"{victim} replaced")
    assert time.monotonic() - killed_at < 2 * interval
    assert set(after) == set(before)  # recreated under the same name
    other = next(n for n in before if n != victim)
    assert after[other] == before[other]  # the healthy one was left alone
    assert next(r for r in processes(team) if r.name == victim).restarts == 1


def test_replica_failing_its_health_check_is_replaced(
    serving: ProviderSet, team: Team, tmp_path: Path
) -> None:
    hc = health_check("sick-hc", interval=1, unhealthy=2)
    tmpl = template("sick-tmpl", env={"FAIL_DIR": str(tmp_path)})
    create(serving, hc, tmpl, group("sick-mig", tmpl, hc, size=2))
    before = healthy(team, "sick-mig", 2)
    victim, (pid, _) = sorted(before.items())[0]
    (tmp_path / victim).touch()  # its /healthz now answers 500

    def restarted() -> bool:
        views = {r.name: r for r in processes(team) if r.group == "sick-mig"}
        return views[victim].restarts >= 1 and views[victim].pid != pid

    wait_until(restarted, 8, f"{victim} recreated after failing its check")
    (tmp_path / victim).unlink()
    after = healthy(team, "sick-mig", 2)
    assert after[victim][0] != pid
    other = next(n for n in before if n != victim)
    assert after[other] == before[other]


def test_deleting_the_group_stops_its_processes_and_frees_their_ports(
    serving: ProviderSet, agent: AgentHandle, team: Team
) -> None:
    hc, tmpl = health_check("del-hc"), template("del-tmpl")
    create(serving, hc, tmpl, group("del-mig", tmpl, hc, size=2))
    replicas = healthy(team, "del-mig", 2)
    md_ports = [r.metadata_port for r in processes(team) if r.group == "del-mig"]
    delete(serving, ResourceKey("instanceGroupManager", "del-mig"))
    assert_all_gone([pid for pid, _ in replicas.values()])
    assert all(port_released(port) for _, port in replicas.values())
    assert all(port_released(p) for p in md_ports if p)
    assert not [r for r in processes(team) if r.group == "del-mig"]
    # now nothing refers to them: they can go
    delete(serving, tmpl.key, hc.key)


def test_references_are_enforced_like_gcp(serving: ProviderSet, team: Team) -> None:
    hc, tmpl = health_check("ref-hc"), template("ref-tmpl")
    mig = group("ref-mig", tmpl, hc, size=1)
    with pytest.raises(InvalidRequest, match="ref-tmpl, which does not exist"):
        run(serving, "create", mig)
    create(serving, hc, tmpl, mig)
    with pytest.raises(AlreadyExists):
        run(serving, "create", hc)
    with pytest.raises(ResourceInUse, match="instanceGroupManagers/ref-mig") as err:
        run(serving, "delete", tmpl.key)
    assert "zones/us-central1-a/instanceGroupManagers/ref-mig" in err.value.used_by
    with pytest.raises(ResourceInUse):
        run(serving, "delete", hc.key)
    with pytest.raises(InvalidRequest, match="immutable"):
        run(serving, "update", template("ref-tmpl", env={"X": "1"}), fingerprint=None)
    bad = template("ref-bad").model_copy(
        update={"properties": tmpl.properties.model_copy(update={"metadata": None})}
    )
    with pytest.raises(InvalidRequest, match="mlplane-args"):
        run(serving, "create", bad)


def test_a_replica_deleted_through_the_api_is_recreated_by_its_group(
    serving: ProviderSet, agent: AgentHandle, team: Team
) -> None:
    hc, tmpl = health_check("rm-hc"), template("rm-tmpl")
    mig = group("rm-mig", tmpl, hc, size=1).model_copy(update={"base_instance_name": "srv-rm"})
    create(serving, hc, tmpl, mig)
    ((name, (pid, _)),) = healthy(team, "rm-mig", 1).items()
    # a developer may not delete a serving replica (notebook VMs only); the serving account may
    alice = providers_as(team, "alice@acme.com")
    with pytest.raises(PermissionDenied, match=r"compute\.instances\.delete"):
        run(alice, "delete", ResourceKey("instance", name))
    run(serving, "delete", ResourceKey("instance", name))
    assert_all_gone([pid])
    after = healthy(team, "rm-mig", 1)
    assert list(after) == [name] and after[name][0] != pid


def test_the_model_decides_who_may_update_a_group(serving: ProviderSet, team: Team) -> None:
    """Serving replaces revisions and never updates a MIG in place: the agent enforces it."""
    hc, tmpl = health_check("upd-hc"), template("upd-tmpl")
    mig = group("upd-mig", tmpl, hc, size=1)
    create(serving, hc, tmpl, mig)
    fingerprint = serving.for_kind("instanceGroupManager").get(mig.key).fingerprint
    with pytest.raises(PermissionDenied, match=r"missing compute\.instanceGroupManagers\.update"):
        run(serving, "update", mig.model_copy(update={"target_size": 3}), fingerprint=fingerprint)
    healthy(team, "upd-mig", 1)
