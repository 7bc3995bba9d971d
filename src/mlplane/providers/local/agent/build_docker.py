"""Build steps of the builder `gcr.io/cloud-builders/docker`, run by the agent (decision 1702).

Cloud Build runs that builder image with the worker's Docker socket; the agent cannot pull it
(no Docker Hub), and needs no other: the builder *is* the docker CLI, so a step runs the
host's docker CLI with the step's arguments against the reachable engine, in the build's
workspace, as a supervised process (cancel stops it). The engine pushes to the local registry
with the build's credentials: the trigger's service account's token (the one the build's
metadata server hands out, revoked when the build ends), as `oauth2accesstoken` in a
DOCKER_CONFIG of the build's own; the registry's token endpoint decides with the repository's
IAM. Without an engine or a registry the step is skipped (recorded, and said in the log).
After the build, each image of its `images` field is recorded with the digest the engine pushed
(results.images).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlplane.model.principals import Principal
from mlplane.providers.local.engine import Engine, find_engine, why_not

from ..procfs import start_time
from .host import Host
from .processes import ProcessId, spawn
from .registry import Registry

_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "NO_PROXY", "no_proxy")


class DockerSteps:
    def __init__(self, host: Host, registry: Registry) -> None:
        self.host = host
        self.registry = registry

    async def unavailable(self) -> str:
        """Why docker steps cannot run here ('' when they can)."""
        if await asyncio.to_thread(find_engine) is None:
            return f"needs a Docker engine: {why_not()}"
        if not self.registry.address:
            return f"needs the local registry: {self.registry.unavailable or 'not started'}"
        return ""

    async def start(
        self, build_id: str, service_account: str, args: list[str], cwd: Path, log_path: Path
    ) -> tuple[ProcessId, Callable[[], Any]]:
        """Start `docker ARGS` for the build; its process id and an awaitable of its exit."""
        engine = await asyncio.to_thread(find_engine)
        assert engine is not None
        token = self.host.tokens.current(
            Principal("serviceAccount", service_account), "build", build_id
        ).value
        config = self.registry.docker_config(
            self.host.paths.project_file.parent / ".mlplane" / "builds" / build_id / "docker", token
        )
        env = engine.environment({k: v for k, v in os.environ.items() if k in _ENV})
        proc = await spawn(
            [engine.cli, "--config", str(config), *args], env, cwd, log_path, self.host.children
        )
        return ProcessId(proc.pid, start_time(proc.pid) or 0), proc.wait

    async def digests(self, images: list[str]) -> list[dict[str, Any]]:
        """results.images: each pushed image with its digest (from the engine, in one call)."""
        engine = await asyncio.to_thread(find_engine)
        found = await asyncio.to_thread(_repo_digests, engine, images) if engine else {}
        return [{"name": ref, "digest": found.get(ref, "")} for ref in images]


def _repository(ref: str) -> str:
    last = ref.rsplit("/", 1)[-1]
    return ref[: len(ref) - len(last)] + last.split(":", 1)[0].split("@", 1)[0]


def _repo_digests(engine: Engine, refs: list[str]) -> dict[str, str]:
    if not refs:
        return {}
    try:
        out = subprocess.run(
            [engine.cli, "image", "inspect", "--format", "{{json .RepoDigests}}", *refs],
            capture_output=True,
            text=True,
            timeout=60,
            env=engine.environment(),
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    found: dict[str, str] = {}
    lines = out.stdout.splitlines()
    if len(lines) != len(refs):  # some image is missing: inspect them one by one
        if len(refs) > 1:
            for ref in refs:
                found.update(_repo_digests(engine, [ref]))
        return found
    for ref, line in zip(refs, lines, strict=True):
        try:
            items = json.loads(line or "[]")
        except ValueError:
            continue
        for item in items:
            name, _, digest = str(item).partition("@")
            if name == _repository(ref):
                found[ref] = digest
    return found
