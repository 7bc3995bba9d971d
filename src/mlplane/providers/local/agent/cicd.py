"""The CI/CD process's side of the agent, wired in one place: the local Artifact Registry (a
supervised OCI registry behind the agent's tokens), workloads as containers when a Docker
engine is reachable, Cloud Run Admin v2 (and gcloud's v1 view), the docker steps of builds and
`build-images`'s config, and the project's declared auxiliary services (the foundation the
agent applies when it starts, as `mlplane export` applies it on Google).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplane.iam.compiled import TriggerInfo
from mlplane.iam.loading import load_project
from mlplane.model.builds import build_config
from mlplane.model.compute import (
    AttachedDisk,
    AttachedDiskInitializeParams,
    Instance,
    Metadata,
    MetadataItem,
    ServiceAccount,
)
from mlplane.model.images import (
    artifact_registry_host,
    localize,
    project_images,
    repository_id,
    repository_path,
)
from mlplane.model.project import ProjectFile
from mlplane.model.workload import container_metadata

from .auth import Gate
from .build_docker import DockerSteps
from .builds import BuildRunner
from .cloudrun import CloudRun
from .cloudrun_files import RunFiles
from .containers import Containers
from .gateway import PlainHandler, Surface
from .host import Host
from .instances import InstanceRuntime
from .registry import TOKEN_PATH, Registry
from .runtime import Runtime
from .store import Record, State
from .surfaces.run import RunApi
from .surfaces.run_v1 import RunV1View

log = logging.getLogger(__name__)
COS = "projects/cos-cloud/global/images/family/cos-stable"
FOUNDATION = "mlplane-foundation"  # the owner of what the agent creates at start


@dataclass
class Cicd:
    registry: Registry
    run: CloudRun
    run_api: RunApi
    surfaces: list[Surface]
    plain: dict[tuple[str, str], PlainHandler]
    public: tuple[str, ...]
    configs: Callable[[TriggerInfo], dict[str, Any]]
    branch_of: Callable[[str], str]


class _Project:
    """The project file as last read (re-read when it changes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._value: ProjectFile | None = None

    def get(self) -> ProjectFile:
        try:
            st = self.path.stat()
            stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except OSError:
            stamp = self._stamp
        if self._value is None or stamp != self._stamp:
            self._value = load_project(self.path).project
            self._stamp = stamp
        return self._value


def attach(host: Host, gate: Gate, runtime: Runtime, runner: BuildRunner) -> Cicd:
    project = _Project(host.paths.project_file)
    p = project.get()
    repositories = {k: p.resolve(v) for k, v in p.resources.repositories.items()}
    registry = Registry(host, gate, p.project.region, repositories)
    host.containers = Containers(host, registry)
    run = CloudRun(host, p.project.id, p.project.zone, RunFiles(host.paths.cloudrun))
    run.sync = runtime.frontends.sync
    run.push = runtime.frontends.push_now
    runtime.frontends.extra = run.listeners
    run_api = RunApi(gate, run, p.project.region, host.ports.allocate)
    runner.docker = DockerSteps(host, registry)

    def configs(info: TriggerInfo) -> dict[str, Any]:
        current = project.get()
        pid, region = current.project.id, current.project.region
        if info.name != "build-images":
            return build_config(info.name, pid, region, info.runs_as)
        host_ = registry.address or artifact_registry_host(region)
        repository = repository_path(host_, pid, repository_id(current))
        return build_config(
            info.name,
            pid,
            region,
            info.runs_as,
            repository=repository,
            images=project_images(current),
        )

    def branch_of(trigger: str) -> str:
        current = project.get()
        found = next((t for t in current.triggers if t.name == trigger), None)
        return (found.branch if found is not None and found.branch else "") or current.ci.branch

    async def started() -> None:
        await registry.start()
        containers = host.containers
        if isinstance(containers, Containers):  # before restored instances start theirs
            left = await containers.sweep()
            if left:
                log.warning("removed %d containers left by a previous agent", left)
        await run.reopen()  # the restored services' front ends, on the ports they had

    async def restored() -> None:
        for svc in list(run.services.values()):  # restored: their serving revisions start
            host.background(run.resume(svc))
        host.background(_after_start(host, runtime, run_api, registry, project.get(), gate))

    async def stopping() -> None:
        await run.shutdown()
        await registry.stop()

    host.on_start.append(started)
    host.on_restored.append(restored)
    host.on_stop.append(stopping)
    return Cicd(
        registry,
        run,
        run_api,
        [run_api.surface(), RunV1View(run_api).surface()],
        {("GET", TOKEN_PATH): registry.token},
        (TOKEN_PATH,),
        configs,
        branch_of,
    )


async def _after_start(
    host: Host, runtime: Runtime, run_api: RunApi, registry: Registry, p: ProjectFile, gate: Gate
) -> None:
    try:
        await apply_foundation(host, runtime, run_api, registry, p, gate)
    except Exception:  # the agent keeps serving; the log says what failed
        log.exception("applying the declared auxiliary services failed")


def _image(p: ProjectFile, registry: Registry, image: str) -> str:
    resolved = p.resolve(image)
    if registry.address:
        return localize(resolved, artifact_registry_host(p.project.region), registry.address)
    return resolved


async def apply_foundation(
    host: Host, runtime: Runtime, run_api: RunApi, registry: Registry, p: ProjectFile, gate: Gate
) -> None:
    """Create the auxiliary instances and Cloud Run services `mlplane.toml` declares (passive:
    created here once; only `build-images` changes them: new revisions, resets). A service the
    agent restored (decision 1708) is left as it is."""
    account = gate.authorizer.policy.identities.get("aux-runtime", "")
    for decl in p.auxiliary.instances:
        if decl.name in runtime.instances:
            continue
        # the foundation's instance, as `mlplane export` creates it: the image and the startup
        # script that runs it on Google (the agent runs the image itself)
        items = container_metadata(p.resolve(decl.image))
        spec = Instance(
            name=decl.name,
            zone=decl.zone or p.project.zone,
            machine_type=decl.machine_type,
            disks=(
                AttachedDisk(
                    boot=True, initialize_params=AttachedDiskInitializeParams(source_image=COS)
                ),
            ),
            service_accounts=(ServiceAccount(email=account),) if account else (),
            metadata=Metadata(
                items=tuple(MetadataItem(key=k, value=v) for k, v in sorted(items.items()))
            ),
            labels={"mlplane-kind": "auxiliary"},
        )
        instance = InstanceRuntime(host, spec, runtime.template)
        runtime.store.add(Record(spec, owner=FOUNDATION, state=State.READY))
        runtime.instances[decl.name] = instance
        try:
            await instance.start()
        except (ValueError, OSError) as exc:
            instance.status = "TERMINATED"
            log.warning("auxiliary instance %s did not start: %s", decl.name, exc)
    for svc in p.auxiliary.run_services:
        body = {
            "template": {
                "serviceAccount": account,
                "containers": [{"image": _image(p, registry, svc.image)}],
            },
            "labels": {"mlplane-kind": "auxiliary"},
        }
        await run_api.create_declared(svc.name, body, FOUNDATION)
    host.notify()
