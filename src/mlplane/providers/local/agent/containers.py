"""Workloads as containers, when a Docker engine is reachable (decision 1703).

An instance whose metadata names an image (`mlplane-image`), or a Cloud Run revision, runs as
`docker run` of that image on the host network (its port is `PORT`, its metadata server and the
agent's APIs are on loopback, as on a VM or in Cloud Run), with `--init` so signals reach the
workload and `--pull always` so a reset reloads what a tag names now (a Container-Optimized OS
VM re-runs its startup script). The engine pulls from the local registry with the workload's
own identity: an instance's service account token (the repository's IAM decides), or Cloud
Run's service agent. The `docker run` process is the supervised process; stopping it stops
the container, and the container is removed by name afterwards in any case.

An image named by its Artifact Registry name (`REGION-docker.pkg.dev/...`, what an instance
template names on Google) is pulled from the local registry, which stands in for that host. A
workload with a command of its own (`mlplane-args`: training, serving replicas) runs as a
container only when its image is in the registry (else as a process, as without an engine);
it runs as the agent's user and sees the project's directory, and any other host path its
command or environment names, at the same path: locally that is where the project's buckets,
the job's source and its scratch disk are (decision 1703).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mlplane.model.images import ImageRef
from mlplane.model.principals import Principal
from mlplane.providers.local.engine import Engine, find_engine, why_not

from .host import Host
from .registry import Registry

log = logging.getLogger(__name__)
PROJECT_LABEL = "dev.mlplane.project"
# Variables of a workload's environment that mean something inside a container too (the host's
# PATH, HOME and project paths do not).
_PASS = (
    "GCE_METADATA_HOST",
    "GCE_METADATA_IP",
    "GCE_METADATA_ROOT",
    "CLOUDSDK_CORE_PROJECT",
    "CLOUDSDK_AUTH_TOKEN_HOST",
    "MLPLANE_INSTANCE_NAME",
    "MLPLANE_PROJECT_ID",
    "NO_PROXY",
    "PORT",
)
# ... and what an mlplane workload (one with a command) reads of its host, at the same paths.
_PASS_COMMAND = ("MLPLANE_PROJECT", "MLPLANE_CONFIG_DIR")


class Containers:
    def __init__(self, host: Host, registry: Registry | None) -> None:
        self.host = host
        self.registry = registry
        self.label = hashlib.sha256(str(host.paths.project_file).encode()).hexdigest()[:12]

    async def engine(self) -> Engine | None:
        return await asyncio.to_thread(find_engine)

    def why_not(self) -> str:
        return why_not()

    async def present(self, image: str) -> bool:
        """Whether the local registry holds `image` (an Artifact Registry name or its own)."""
        return self.registry is not None and await self.registry.has(image)

    def _mounts(self, args: Sequence[str], env: Mapping[str, str]) -> list[str]:
        """`-v` flags: the project's directory, and the host paths a command names (the job's
        source, a local model artifact), each at the same path."""
        root = self.host.paths.project_file.parent.resolve()
        paths = {root, *_host_paths([*args, *env.values()], root)}
        flags: list[str] = []
        for path in sorted(paths):
            flags += ["-v", f"{path}:{path}" + ("" if path == root else ":ro")]
        return flags

    def _credentials(self, name: str, service_account: str | None, image: str) -> list[str]:
        """`--config DIR` with credentials for the local registry, when the image is in it."""
        registry = self.registry
        if registry is None or not registry.address:
            return []
        with contextlib.suppress(ValueError):
            if ImageRef.parse(image).host != registry.address:
                return []
        token: str | None = None
        if service_account:
            token = self.host.tokens.current(
                Principal("serviceAccount", service_account), "instance", name
            ).value
        directory = self.host.paths.root / "workloads" / name / "docker"
        return ["--config", str(registry.docker_config(directory, token))]

    async def argv(
        self,
        engine: Engine,
        name: str,
        image: str,
        args: Sequence[str],
        env: Mapping[str, str],
        workload_env: Mapping[str, str],
        service_account: str | None,
        *,
        as_service_agent: bool = False,
    ) -> tuple[list[str], str]:
        """The `docker run` command of workload `name`, and its container's name: `env` is the
        agent's environment for workloads (only what holds inside a container passes),
        `workload_env` the workload's own variables (all pass)."""
        container = f"mlplane-{self.label}-{name}-{secrets.token_hex(3)}"[:120]
        if self.registry is not None:
            image = self.registry.localize(image)
        account = None if as_service_agent else service_account
        creds = (
            self._credentials(name, account, image) if service_account or as_service_agent else []
        )
        argv = [
            engine.cli,
            *creds,
            "run",
            "--rm",
            "--init",
            "--pull",
            "always",
            "--network",
            "host",
            "--name",
            container,
            "--label",
            f"{PROJECT_LABEL}={self.label}",
            "--label",
            f"dev.mlplane.workload={name}",
        ]
        keep = (*_PASS, *_PASS_COMMAND) if args else _PASS
        passed = {
            k: v
            for k, v in env.items()
            if k in keep or k.startswith("CLOUDSDK_API_ENDPOINT_OVERRIDES_")
        }
        passed.update(workload_env)
        if args:  # an mlplane workload: the host's paths, as the agent's user
            argv += ["--user", f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp"]
            argv += self._mounts(args, passed)
        for key in sorted(passed):
            argv += ["-e", f"{key}={passed[key]}"]
        argv.append(image)
        argv += list(args)
        return argv, container

    async def remove(self, container: str) -> None:
        """Remove a container by name (gone already is fine)."""
        engine = await self.engine()
        if engine is None or not container:
            return
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            proc = await asyncio.create_subprocess_exec(
                engine.cli,
                "rm",
                "-f",
                container,
                env=engine.environment(),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await asyncio.wait_for(proc.wait(), 30)

    async def sweep(self) -> int:
        """Remove containers a previous agent of this project left running."""
        engine = await self.engine()
        if engine is None:
            return 0
        try:
            out = await asyncio.to_thread(
                subprocess.run,
                [engine.cli, "ps", "-aq", "--filter", f"label={PROJECT_LABEL}={self.label}"],
                capture_output=True,
                text=True,
                timeout=30,
                env=engine.environment(),
            )
        except (OSError, subprocess.SubprocessError):
            return 0
        ids = out.stdout.split()
        if ids:
            await asyncio.to_thread(
                subprocess.run,
                [engine.cli, "rm", "-f", *ids],
                capture_output=True,
                timeout=60,
                env=engine.environment(),
            )
        return len(ids)


def _host_paths(values: Iterable[str], root: Path) -> set[Path]:
    """Existing absolute paths among `values` outside `root` (directories; a file's parent)."""
    found: set[Path] = set()
    for value in values:
        if not value.startswith("/") or value.startswith("//"):
            continue
        path = Path(value)
        try:
            if not path.exists():
                continue
            path = path.resolve()
        except OSError:
            continue
        if path.is_file():
            path = path.parent
        if path == Path("/") or path.is_relative_to(root):
            continue
        found.add(path)
    return found
