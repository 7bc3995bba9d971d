"""What an instance runs, written in its metadata: one instance(-template) body for Google and
for the local agent.

    mlplane-args            JSON array: the workload's command, as the container runs it
                            (`python -m ...`; locally `python` is the agent's interpreter)
    mlplane-image           the container image (Artifact Registry), when built
    mlplane-env-NAME        environment variable NAME of the workload
    mlplane-model-artifact  URI of the model artifact, given as MLPLANE_MODEL_ARTIFACT
    startup-script          what a Container-Optimized OS VM runs at boot: `docker run` of the
                            image with those arguments (generated); the local agent runs
                            `mlplane-args` itself, and a startup script only when there are none
    google-logging-enabled  "true": the container's output goes to Cloud Logging
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

ARGS_KEY = "mlplane-args"
IMAGE_KEY = "mlplane-image"
ENV_PREFIX = "mlplane-env-"
ARTIFACT_KEY = "mlplane-model-artifact"
STARTUP_SCRIPT_KEY = "startup-script"
LOGGING_KEY = "google-logging-enabled"
ARTIFACT_ENV = "MLPLANE_MODEL_ARTIFACT"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Workload:
    args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    artifact: str | None = None


def startup_script(workload: Workload) -> str:
    """The boot script of a Container-Optimized OS VM that runs `workload` in its image."""
    if workload.image is None:
        return (
            "#!/bin/bash\n"
            "echo 'mlplane: this instance has no container image (mlplane-image): build the "
            "process images with `mlplane images build`' >&2\nexit 1\n"
        )
    env = dict(workload.env)
    if workload.artifact:
        env[ARTIFACT_ENV] = workload.artifact
    flags = " ".join(f"-e {shlex.quote(f'{k}={v}')}" for k, v in sorted(env.items()))
    args = " ".join(shlex.quote(a) for a in workload.args)
    return (
        "#!/bin/bash\n"
        "export HOME=/home/chronos\n"
        "docker-credential-gcr configure-docker --registries="
        f"{shlex.quote(workload.image.split('/', 1)[0])}\n"
        f"exec docker run --rm --network host --name workload {flags} "
        f"{shlex.quote(workload.image)} {args}\n"
    )


def workload_metadata(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    artifact: str | None = None,
    image: str | None = None,
) -> dict[str, str]:
    """Metadata items that make an instance run `args` (with `env` and `artifact`), on Google
    (the startup script) and locally (the agent reads `mlplane-args`)."""
    if not args or not all(isinstance(a, str) and a for a in args):
        raise ValueError("a workload's command must be a non-empty list of non-empty strings")
    items = {ARGS_KEY: json.dumps(list(args))}
    for name, value in (env or {}).items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"'{name}' is not an environment variable name")
        items[ENV_PREFIX + name] = value
    if artifact:
        items[ARTIFACT_KEY] = artifact
    if image:
        items[IMAGE_KEY] = image
    workload = Workload(tuple(args), dict(env or {}), image, artifact)
    items[STARTUP_SCRIPT_KEY] = startup_script(workload)
    items[LOGGING_KEY] = "true"
    return items


def container_metadata(image: str) -> dict[str, str]:
    """Metadata items that make an instance run `image`'s own command (an auxiliary instance):
    on Google the startup script runs it; locally the agent runs it as a container."""
    return {
        IMAGE_KEY: image,
        STARTUP_SCRIPT_KEY: startup_script(Workload((), {}, image)),
        LOGGING_KEY: "true",
    }


def workload_of(items: Mapping[str, str], what: str) -> Workload:
    """The workload metadata `items` describe; ValueError names what is wrong and where."""
    raw = items.get(ARGS_KEY)
    if raw is None:
        raise ValueError(f"{what} has no '{ARGS_KEY}' metadata item")
    try:
        parsed: object = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{what}: metadata '{ARGS_KEY}' is not JSON: {exc}") from None
    if not (isinstance(parsed, list) and parsed and all(isinstance(a, str) and a for a in parsed)):
        raise ValueError(f"{what}: metadata '{ARGS_KEY}' must be a non-empty list of strings")
    env: dict[str, str] = {}
    for key, value in items.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :]
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{what}: metadata '{key}' does not name an environment variable")
            env[name] = value
    return Workload(tuple(parsed), env, items.get(IMAGE_KEY), items.get(ARTIFACT_KEY) or None)
