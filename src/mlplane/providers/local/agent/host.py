"""What the agent's runtime pieces share, and how an instance or replica process is launched:
its command from the runtime metadata, its own port (`PORT`) and its own metadata endpoint
(`GCE_METADATA_HOST`), its log file under `.mlplane/agent/logs/`. A workload that names an
image runs as a container of it when a Docker engine is reachable (`containers.py`), else as
its command here, else not at all (ValueError saying it needs an engine)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlplane.apis.endpoints import Endpoints
from mlplane.model.compute import ResourceKey
from mlplane.providers.local.paths import AgentPaths
from mlplane.providers.local.runtime import runtime_of

from .auth.tokens import TokenAuthority
from .metadata import InstanceIdentity, MetadataServer
from .ports import PortAllocator
from .processes import ChildRegistry, Supervised, spawn
from .store import Observed
from .warm_pool import REPLICA_LAUNCHER, WarmWorker

log = logging.getLogger(__name__)

DATA_PLANES = ("python", "haproxy")
# Variables of the agent's own environment that a workload must not inherit: a VM has no
# user's credentials; its identity is its metadata server's.
_PRIVATE = ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", "CLOUDSDK_CONFIG")


@dataclass(frozen=True)
class AgentSettings:
    """Timings of the agent; each can be set with MLPLANE_AGENT_<NAME> (e.g.
    MLPLANE_AGENT_STOP_GRACE_SEC=1) in the environment of `mlplane up`."""

    stop_grace_sec: float = 5.0  # SIGTERM -> SIGKILL
    autoscale_tick_sec: float = 1.0
    lb_drain_sec: float = 1.0  # in-flight requests when a forwarding rule goes
    restart_backoff_max_sec: float = 10.0  # a replica that keeps crashing at start
    data_plane: str = ""  # "python" or "haproxy"; "" takes mlplane.toml's [local] data_plane

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AgentSettings:
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            raw = env.get(f"MLPLANE_AGENT_{name.upper()}")
            if name == "data_plane" and raw:
                if raw not in DATA_PLANES:
                    known = ", ".join(DATA_PLANES)
                    raise ValueError(f"MLPLANE_AGENT_DATA_PLANE={raw!r}: expected one of {known}")
                values[name] = raw
            elif raw is not None and name != "data_plane":
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise ValueError(
                        f"MLPLANE_AGENT_{name.upper()}={raw!r} is not a number"
                    ) from None
        return cls(**values)


class ContainerRunner(Protocol):
    """What `launch` needs to run a workload as a container (containers.Containers)."""

    async def engine(self) -> Any: ...

    def why_not(self) -> str: ...

    async def present(self, image: str) -> bool: ...

    async def argv(
        self, engine: Any, name: str, image: str, args: Sequence[str], env: Mapping[str, str],
        workload_env: Mapping[str, str], service_account: str | None, *,
        as_service_agent: bool = False,
    ) -> tuple[list[str], str]: ...  # fmt: skip

    async def remove(self, container: str) -> None: ...


Hook = Callable[[], Awaitable[None]]


@dataclass
class Host:
    project_id: str
    paths: AgentPaths
    settings: AgentSettings
    tokens: TokenAuthority
    ports: PortAllocator = field(default_factory=PortAllocator)
    children: ChildRegistry = field(init=False)
    api_port: int = 0
    names: set[str] = field(default_factory=set)  # instance and replica names in use
    notify: Callable[[], None] = lambda: None  # membership or health changed
    containers: ContainerRunner | None = None  # workloads that name an image, with an engine
    on_start: list[Hook] = field(default_factory=list)  # once the API listens (api_port set)
    on_restored: list[Hook] = field(default_factory=list)  # after the records are restored
    on_stop: list[Hook] = field(default_factory=list)  # before the runtime shuts down
    # what a runtime reports of its resource, kept with the record (ResourceStore.observe)
    observe: Callable[[ResourceKey, Observed], None] = lambda key, observed: None

    def __post_init__(self) -> None:
        self.children = ChildRegistry(self.paths.children)
        self._tasks: set[asyncio.Task[None]] = set()
        # forks model-server replicas with the server already imported (decision 0019)
        self.launcher = WarmWorker(
            self.paths.logs / "replica-launcher.log",
            REPLICA_LAUNCHER,
            ("mlplane.serving", "mlplane.data.fetch"),
        )

    async def start_launcher(self) -> None:
        """Start the replica launcher (replicas start cold until it is ready, or if it dies)."""
        try:
            await self.launcher.start(agent_environment())
        except OSError as exc:
            log.warning("no replica launcher (%s): replicas start cold", exc)

    def background(self, work: Coroutine[object, object, None]) -> None:
        """Run `work` as a task the host keeps a reference to until it is done (the event loop
        holds tasks only weakly)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@dataclass
class Running:
    """A launched instance process with its serving port and metadata endpoint."""

    name: str
    proc: Supervised
    port: int
    metadata: MetadataServer
    started_at: float = field(default_factory=time.monotonic)
    container: str = ""  # the container's name, when it runs as one

    @property
    def pid(self) -> int:
        return self.proc.pid


def agent_environment() -> dict[str, str]:
    """The agent's environment without anyone's credentials (what its launchers start with)."""
    return {k: v for k, v in os.environ.items() if k not in _PRIVATE}


def workload_environment(host: Host, name: str, metadata_port: int) -> dict[str, str]:
    """What every workload process (an instance's, a build's) sees: the agent's environment
    without anyone's credentials, its own metadata server, the endpoints of the agent's APIs
    (as gcloud's overrides), and an empty config directory (no signed-in user on a VM)."""
    env = agent_environment()
    config = host.paths.root / "workloads" / name
    config.mkdir(parents=True, exist_ok=True, mode=0o700)
    env.update(Endpoints.agent(host.api_url).environment(host.project_id))
    # `python` in a workload's command is this interpreter, as it is the image's in a container
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join(
        [bindir, *(p for p in env.get("PATH", "").split(os.pathsep) if p)]
    )
    env.update(
        {
            "GCE_METADATA_HOST": f"127.0.0.1:{metadata_port}",
            "GCE_METADATA_IP": f"127.0.0.1:{metadata_port}",
            "GCE_METADATA_ROOT": f"127.0.0.1:{metadata_port}",
            "MLPLANE_CONFIG_DIR": str(config),
            "MLPLANE_PROJECT": str(host.paths.project_file),
            "MLPLANE_INSTANCE_NAME": name,
            "MLPLANE_PROJECT_ID": host.project_id,
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    return env


async def _engine(host: Host, image: str | None) -> Any:
    if image is None or host.containers is None:
        return None
    return await host.containers.engine()


async def launch(
    host: Host,
    name: str,
    zone: str,
    items: Mapping[str, str],
    service_account: str | None,
    port: int | None = None,
    *,
    extra_env: Mapping[str, str] | None = None,
    as_service_agent: bool = False,
) -> Running:
    """Start the process of instance `name` (on `port` if it is free: a restarted VM keeps its
    address); ValueError/OSError when it cannot start. `as_service_agent`: its image is pulled
    by Cloud Run's service agent (a revision)."""
    runtime = runtime_of(items, f"instance '{name}'")
    engine = await _engine(host, runtime.image)
    if engine is not None and runtime.argv and host.containers is not None:
        # a workload that can run as a process runs as a container only from the registry
        assert runtime.image is not None
        if not await host.containers.present(runtime.image):
            log.info("instance %s: %s is not in the registry: it runs as a process", name,
                     runtime.image)  # fmt: skip
            engine = None
    if runtime.image and engine is None and not runtime.argv:
        why = host.containers.why_not() if host.containers is not None else "no engine support"
        raise ValueError(
            f"instance '{name}' runs the image {runtime.image}, which needs a Docker engine: {why}"
        )
    identity = InstanceIdentity(name, zone, host.project_id, service_account, dict(items))
    metadata = MetadataServer(identity, host.tokens)
    md_port = await metadata.start()
    port = host.ports.allocate(prefer=port)
    env = workload_environment(host, name, md_port)
    workload_env = {**runtime.env, **(extra_env or {})}
    env.update(workload_env)
    env["PORT"] = str(port)
    argv, container = list(runtime.argv), ""
    try:
        if engine is not None and host.containers is not None and runtime.image:
            argv, container = await host.containers.argv(
                engine, name, runtime.image, runtime.args, env, workload_env, service_account,
                as_service_agent=as_service_agent,
            )  # fmt: skip
            env = engine.environment(env)
        proc = await _start(host, argv, env, host.paths.logs / f"{name}.log", warm=not container)
    except BaseException:
        host.ports.release(port)
        await metadata.close()
        raise
    return Running(name, proc, port, metadata, container=container)


async def _start(
    host: Host, argv: Sequence[str], env: Mapping[str, str], log_path: Path, *, warm: bool
) -> Supervised:
    """`argv` as a new process, or forked by the replica launcher when it runs its module."""
    cwd = host.paths.project_file.parent
    module = host.launcher.takes(argv) if warm else None
    if module is not None:
        forked = await host.launcher.run(module, argv[3:], env, cwd, log_path)
        if forked is not None:
            return Supervised.adopt(forked.pid, forked.wait(), log_path, host.children)
        host.background(host.start_launcher())  # for the next one
    return await spawn(argv, env, cwd, log_path, host.children)


async def halt(host: Host, running: Running) -> int:
    """Stop the process (gracefully, then SIGKILL), close its metadata endpoint, free its port."""
    try:
        code = await running.proc.stop(host.settings.stop_grace_sec)
        if running.container and host.containers is not None:
            await host.containers.remove(running.container)
    finally:
        host.children.remove(running.pid)
        host.ports.release(running.port)
        with contextlib.suppress(Exception):
            await running.metadata.close()
    return code
