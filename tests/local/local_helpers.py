"""Helpers of the local-provider tests: principals, specs with a real replica program, waiting."""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mlplane.model.compute import (
    AttachedDisk,
    AttachedDiskInitializeParams,
    AutoHealingPolicy,
    HealthCheck,
    HttpHealthCheck,
    InstanceGroupManager,
    InstanceProperties,
    InstanceTemplate,
    Metadata,
    MetadataItem,
    NamedPort,
    ResourceKey,
    ResourceSpec,
    ServiceAccount,
)
from mlplane.model.workload import workload_metadata
from mlplane.providers.base import Operation, ProviderContext, wait_for_operation
from mlplane.providers.local.platform import LocalPlatform
from mlplane.providers.platform import ReplicaView
from mlplane.providers.registry import REGISTRY, ProviderSet
from tests.harness import ADMIN, Team

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
PROJECT = "acme-ml"
ZONE = "us-central1-a"
ALICE = "user:alice@acme.com"
SERVING = "serviceAccount:mlplane-serving@acme-ml.iam.gserviceaccount.com"
SERVING_RUNTIME = "mlplane-serving-runtime@acme-ml.iam.gserviceaccount.com"
TRAINING_ADHOC = "mlplane-training-adhoc@acme-ml.iam.gserviceaccount.com"
EXPERIMENTATION = "mlplane-experimentation@acme-ml.iam.gserviceaccount.com"
REPLICA = (sys.executable, str(HERE / "local_replica.py"))
BOOT_DISK = AttachedDisk(
    boot=True,
    initialize_params=AttachedDiskInitializeParams(
        source_image="projects/cos-cloud/global/images/family/cos-stable"
    ),
)


def wait_until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def port_released(port: int) -> bool:
    """Nothing listens on 127.0.0.1:`port` and a server could bind it again."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pid_gone(pid: int) -> bool:
    """os.kill(pid, 0) fails, or the process is a zombie: it has exited and only waits for
    init (its parent once the agent is gone) to reap it, which PID 1 here does every second or
    so."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def assert_all_gone(pids: Iterable[int], timeout: float = 5.0) -> None:
    pids = list(pids)
    wait_until(lambda: all(pid_gone(p) for p in pids), timeout, f"pids {pids} to exit")


def providers_as(team: Team, who: str) -> ProviderSet:
    """Every kind's provider, calling the agent as `who` (a user's email or an identity id)."""
    ctx = ProviderContext(project=PROJECT, zone=ZONE, region="us-central1", apis=team.api(who))
    return REGISTRY.build("local", ctx)


def processes(team: Team) -> list[ReplicaView]:
    """The processes the agent runs (its host view), read with the admin's token."""
    token = team.api(ADMIN).credentials.token()
    return LocalPlatform(team.project_file).processes(token)


def resources(team: Team) -> set[tuple[str, str]]:
    """(kind, name) of every resource of every kind, listed through the APIs by the admin."""
    out = set()
    for provider in providers_as(team, ADMIN):
        out.update((provider.KIND, o.spec.name) for o in provider.list())
    return out


def process_pids(team: Team) -> list[int]:
    return [p.pid for p in processes(team) if p.pid]


def running_pids(team: Team, count: int, timeout: float = 15.0) -> list[int]:
    """PIDs of the agent's processes, once exactly `count` of them run."""

    def check() -> list[int] | None:
        pids = [r.pid for r in processes(team) if r.pid and r.status == "RUNNING"]
        return pids if len(pids) == count else None

    return wait_until(check, timeout, f"{count} running processes")


def run(
    providers: ProviderSet, verb: str, target: Any, timeout: float = 20.0, **kw: Any
) -> Operation:
    """Create/update/delete through the provider contract and wait for the operation."""
    kind = target.kind if isinstance(target, ResourceKey) else target.KIND
    provider = providers.for_kind(kind)
    op: Operation = getattr(provider, verb)(target, request_id=uuid.uuid4().hex, **kw)
    return wait_for_operation(op, f"{verb} {target}", timeout, poller=provider)


def create(providers: ProviderSet, *specs: ResourceSpec) -> None:
    for spec in specs:
        run(providers, "create", spec)


def delete(providers: ProviderSet, *keys: ResourceKey) -> None:
    for key in keys:
        run(providers, "delete", key)


def health_check(name: str, interval: int = 1, healthy: int = 1, unhealthy: int = 2) -> HealthCheck:
    return HealthCheck(
        name=name,
        http_health_check=HttpHealthCheck(port=8080, request_path="/healthz"),
        check_interval_sec=interval,
        timeout_sec=1,
        healthy_threshold=healthy,
        unhealthy_threshold=unhealthy,
    )


def template(
    name: str, account: str | None = SERVING_RUNTIME, env: Mapping[str, str] | None = None
) -> InstanceTemplate:
    items = workload_metadata(REPLICA, env, artifact="gs://acme-ml-mlplane-artifacts/m/1")
    return InstanceTemplate(
        name=name,
        properties=InstanceProperties(
            machine_type="e2-small",
            disks=(BOOT_DISK,),
            service_accounts=(ServiceAccount(email=account),) if account else (),
            metadata=Metadata(items=tuple(MetadataItem(key=k, value=v) for k, v in items.items())),
        ),
    )


def group(
    name: str, tmpl: InstanceTemplate, check: HealthCheck | None, size: int = 2, delay: int = 0
) -> InstanceGroupManager:
    policies = (
        (AutoHealingPolicy(health_check=check.link, initial_delay_sec=delay),) if check else ()
    )
    return InstanceGroupManager(
        name=name,
        zone=ZONE,
        base_instance_name=name.removesuffix("-mig"),
        instance_template=tmpl.link,
        target_size=size,
        named_ports=(NamedPort(name="http", port=8080),),
        auto_healing_policies=policies,
    )
