"""How the local agent runs an instance's workload (model/workload.py): its `mlplane-args` as a
process, `python` being the agent's own interpreter, with the workload's environment and model
artifact; or, when it names an image (`mlplane-image`) and a Docker engine is reachable, as a
container of that image (the agent decides: `image` is set here). An instance with neither
`mlplane-args` nor an image (e.g. created with gcloud) runs its `startup-script` with /bin/sh
instead, as a VM would at boot.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlplane.model.compute import Metadata
from mlplane.model.workload import (
    ARGS_KEY,
    ARTIFACT_ENV,
    IMAGE_KEY,
    STARTUP_SCRIPT_KEY,
    workload_metadata,
    workload_of,
)

__all__ = ["LocalRuntime", "items_of", "runtime_metadata", "runtime_of"]

# Kept for callers that build metadata for a command (tests, helpers).
runtime_metadata = workload_metadata


@dataclass(frozen=True)
class LocalRuntime:
    argv: tuple[str, ...]  # as a process here (empty: the image's own command only)
    env: Mapping[str, str] = field(default_factory=dict)
    artifact: str | None = None
    image: str | None = None  # run as a container of this image when an engine is reachable
    args: tuple[str, ...] = ()  # the command as given (`python` is the image's, in a container)


def items_of(metadata: Metadata | None) -> dict[str, str]:
    return {i.key: i.value for i in metadata.items} if metadata else {}


def runtime_of(items: Mapping[str, str], what: str) -> LocalRuntime:
    """The process that runs the workload `items` describe; ValueError names what is wrong."""
    if ARGS_KEY not in items:
        if items.get(IMAGE_KEY):
            return LocalRuntime((), {}, None, items[IMAGE_KEY])
        if STARTUP_SCRIPT_KEY in items:
            return LocalRuntime(("/bin/sh", "-c", items[STARTUP_SCRIPT_KEY]))
        raise ValueError(
            f"{what} has no '{ARGS_KEY}' (or '{STARTUP_SCRIPT_KEY}') metadata item: the local "
            "agent runs that command as the instance's process"
        )
    workload = workload_of(items, what)
    argv = workload.args
    if argv[0] in ("python", "python3"):
        argv = (sys.executable, *argv[1:])
    env = dict(workload.env)
    if workload.artifact:
        env[ARTIFACT_ENV] = workload.artifact
    return LocalRuntime(argv, env, workload.artifact, workload.image, workload.args)
