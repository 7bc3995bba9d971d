"""The agent process: one per project, holding `agent.lock` for its whole life.

Start-up: take the lock (or exit 3 if another agent holds it), kill what a crashed predecessor
left in `children.json`, listen on 127.0.0.1 (ephemeral port) with Google's APIs behind
one gateway (`gateway.py`), then publish `agent.json`. Callers authenticate with tokens of
the agent's token authority (`auth/`); sign-in and impersonation tokens survive a restart.
SIGTERM/SIGINT: stop accepting, stop every supervised process
(SIGTERM, SIGKILL after the grace period), close the load balancers, remove the files. The same
happens when the state directory is deleted under a running agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlplane.data.artifacts.audit import writes_by
from mlplane.errors import ConfigError
from mlplane.iam.loading import load_project
from mlplane.providers.local.dataplane.haproxy.process import HaproxyMissing, find_haproxy
from mlplane.providers.local.paths import AgentInfo, AgentPaths, write_atomic, write_info

from .auth import Gate, TokenAuthority
from .builds import BuildRunner
from .cicd import attach as attach_cicd
from .gateway import PUBLIC, Gateway
from .host import AgentSettings, Host
from .http_server import serve
from .metadata import project_number
from .operations import Operations
from .processes import sweep_recorded
from .records import RecordFiles
from .runtime import Runtime
from .service import ResourceService
from .store import ResourceStore
from .surfaces.admin import AdminApi
from .surfaces.cloudbuild import CloudBuildApi
from .surfaces.compute import ComputeApi
from .surfaces.compute import surface as compute_surface
from .surfaces.compute_groups import GroupsApi
from .surfaces.compute_static import StaticApi
from .surfaces.identity import IdentityApi
from .surfaces.servicemanagement import ServiceManagementApi

log = logging.getLogger("mlplane.agent")
EXIT_LOCKED = 3
LOCK_WAIT_SEC = 2.0
WATCH_SEC = 2.0


def acquire_lock(path: Path, wait: float = LOCK_WAIT_SEC) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.05)


def sweep_children(paths: AgentPaths) -> int:
    """Kill the process groups a killed agent left behind, whole (its children died with it;
    what they started did not), matched by PID and start time."""
    killed = sweep_recorded(paths.children)
    paths.children.unlink(missing_ok=True)
    return killed


def run(project_file: Path, settings: AgentSettings | None = None) -> int:
    paths = AgentPaths.for_project(project_file)
    paths.ensure()
    lock = acquire_lock(paths.lock)
    if lock is None:
        log.error("another agent holds %s; not starting", paths.lock)
        return EXIT_LOCKED
    try:
        write_atomic(paths.pid_file, f"{os.getpid()}\n", mode=0o644)
        paths.start_error.unlink(missing_ok=True)
        left = sweep_children(paths)
        if left:
            log.warning("killed %d processes left by a previous agent", left)
        asyncio.run(_serve(paths, settings or AgentSettings.from_env(os.environ)))
        return 0
    except ConfigError as exc:
        _cannot_start(paths, str(exc))
        return exc.exit_code
    except ValueError as exc:
        _cannot_start(paths, str(exc))
        return 2
    finally:
        for path in (paths.info, paths.children, paths.pid_file):
            path.unlink(missing_ok=True)
        os.close(lock)


def _cannot_start(paths: AgentPaths, why: str) -> None:
    """Log why, and leave it where `mlplane up` reads it (`start-error`), in one piece."""
    log.error("cannot start: %s", why)
    with contextlib.suppress(OSError):
        write_atomic(paths.start_error, why + "\n", mode=0o600)


async def _watch_state_dir(paths: AgentPaths, stop: asyncio.Event) -> None:
    """Stop when the state directory goes away (e.g. a deleted temp project): nobody could find
    this agent any more to stop it."""
    inode = paths.lock.stat().st_ino
    while not stop.is_set():
        await asyncio.sleep(WATCH_SEC)
        try:
            gone = paths.lock.stat().st_ino != inode or not paths.pid_file.exists()
        except OSError:
            gone = True
        if gone:
            log.warning("state directory %s is gone: stopping", paths.root)
            stop.set()


def with_data_plane(settings: AgentSettings, from_project: str) -> AgentSettings:
    """The data plane the environment names, else the project file's; ConfigError when it is
    haproxy and haproxy is not installed (the agent does not start, and says why)."""
    chosen = settings.data_plane or from_project
    if chosen == "haproxy" and find_haproxy() is None:
        raise HaproxyMissing()
    return replace(settings, data_plane=chosen)


def build_gateway(
    paths: AgentPaths, settings: AgentSettings, started: float
) -> tuple[Gateway, Host, ResourceStore, Runtime, BuildRunner]:
    """Wire the agent: token authority and IAM gate, runtime, and the API surfaces."""
    tokens = TokenAuthority(paths.tokens)
    gate = Gate(paths.project_file, tokens)
    project_file = load_project(paths.project_file).project
    loaded = project_file.project
    settings = with_data_plane(settings, project_file.local.data_plane)
    host = Host(gate.project, paths, settings, tokens)
    store, ops = ResourceStore(RecordFiles(paths.resources)), Operations()
    runtime = Runtime(host, store)
    service = ResourceService(gate, store, ops, runtime)

    def compute_base() -> str:
        return f"{host.api_url}/compute/v1/"

    compute = ComputeApi(service, compute_base)
    extra = {
        **GroupsApi(compute).handlers(),
        **StaticApi(compute, loaded.zone, loaded.region).handlers(),
    }
    endpoints = ServiceManagementApi(
        service, lambda: project_number(gate.project), paths.servicemanagement
    )
    identity = IdentityApi(gate)
    runner = BuildRunner(
        host, loaded.zone, lambda build: writes_by(paths.project_file, "build", build)
    )
    cicd = attach_cicd(host, gate, runtime, runner)  # registry, containers, Cloud Run
    builds = CloudBuildApi(gate, runner, loaded.region, cicd.configs, cicd.branch_of)

    def processes() -> list[dict[str, Any]]:
        return [v.to_json() for v in runtime.replicas()]

    def resources() -> list[list[str]]:
        return [[key.kind, key.name] for key in store.records]

    admin = AdminApi(gate, started, runtime.openapi, processes, lambda: host.api_port, resources)
    surfaces = [
        compute_surface(compute, extra),
        *endpoints.surfaces(),
        identity.surface(),
        builds.surface(),
        *cicd.surfaces,
    ]
    plain = {**identity.plain(), **admin.plain(), **cicd.plain}
    gateway = Gateway(gate, surfaces, plain, (*PUBLIC, *cicd.public))
    # What a previous agent recorded (ConfigError naming a damaged file: no start); the runtime
    # of the resources is re-created once the API listens (`Runtime.restore`).
    store.load()
    service.restore_operations()  # a retried request gets its operation back
    endpoints.restore()
    runner.restore()
    cicd.run.load()  # Cloud Run services (decision 1708); they run again once the API listens
    return gateway, host, store, runtime, runner


async def _serve(paths: AgentPaths, settings: AgentSettings) -> None:
    started = time.time()
    gateway, host, store, runtime, runner = build_gateway(paths, settings, started)
    server = await serve(gateway.handle, admit=gateway.admit)
    host.api_port = int(server.sockets[0].getsockname()[1])  # workloads are told where it is
    await host.start_launcher()  # imports in the background; replicas start cold until then
    for hook in host.on_start:  # the registry, before any workload pulls from it
        await hook()
    if store.records:
        log.info("restoring %d resources a previous agent recorded", len(store.records))
    await runtime.restore()
    for hook in host.on_restored:  # the declared foundation, beside what was restored
        await hook()
    write_info(paths, AgentInfo(os.getpid(), host.api_port, str(paths.project_file), started))
    log.info("agent pid %d for project %s: API on 127.0.0.1:%d", os.getpid(), host.project_id,
             host.api_port)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watchdog = loop.create_task(_watch_state_dir(paths, stop))
    host.background(runner.start_worker())
    await stop.wait()
    watchdog.cancel()
    log.info("stopping: %d resources, %d processes", len(store.records), len(runtime.replicas()))
    server.close()
    for hook in host.on_stop:
        await hook()
    await runtime.shutdown()
    await host.launcher.stop()  # after the replicas it forked are stopped (they die with it)
    await runner.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 2.0)
    log.info("stopped")
