"""What a local instance runs: its command, environment and model artifact, read from the
instance's (or its template's) metadata items, the same place a GCE startup script lives.

    mlplane-command          JSON array of strings, or a shell-quoted string (split with shlex)
    mlplane-env-NAME         environment variable NAME for the process
    mlplane-model-artifact   URI of the model artifact, given to the process as
                             MLPLANE_MODEL_ARTIFACT
    startup-script           used (with /bin/sh -c) when mlplane-command is absent

`runtime_metadata(...)` builds these items, e.g. for `RevisionSettings.metadata`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mlplane.model.compute import Metadata

COMMAND_KEY = "mlplane-command"
ENV_PREFIX = "mlplane-env-"
ARTIFACT_KEY = "mlplane-model-artifact"
STARTUP_SCRIPT_KEY = "startup-script"
ARTIFACT_ENV = "MLPLANE_MODEL_ARTIFACT"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class LocalRuntime:
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    artifact: str | None = None


def items_of(metadata: Metadata | None) -> dict[str, str]:
    return {i.key: i.value for i in metadata.items} if metadata else {}


def runtime_of(items: Mapping[str, str], what: str) -> LocalRuntime:
    """The runtime described by metadata `items`; ValueError names what is wrong and where."""
    raw = items.get(COMMAND_KEY)
    if raw is not None:
        argv = _command(raw, what)
    elif STARTUP_SCRIPT_KEY in items:
        argv = ("/bin/sh", "-c", items[STARTUP_SCRIPT_KEY])
    else:
        raise ValueError(
            f"{what} has no '{COMMAND_KEY}' (or '{STARTUP_SCRIPT_KEY}') metadata item: the local "
            "provider runs that command as the instance's process"
        )
    env: dict[str, str] = {}
    for key, value in items.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :]
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{what}: metadata '{key}' does not name an environment variable")
            env[name] = value
    artifact = items.get(ARTIFACT_KEY)
    if artifact:
        env[ARTIFACT_ENV] = artifact
    return LocalRuntime(argv, env, artifact)


def _command(raw: str, what: str) -> tuple[str, ...]:
    try:
        parsed: object = json.loads(raw) if raw.lstrip().startswith("[") else shlex.split(raw)
    except ValueError as exc:
        raise ValueError(f"{what}: metadata '{COMMAND_KEY}' cannot be parsed: {exc}") from None
    if not (isinstance(parsed, list) and parsed and all(isinstance(a, str) and a for a in parsed)):
        raise ValueError(f"{what}: metadata '{COMMAND_KEY}' must be a non-empty list of strings")
    return tuple(parsed)


def runtime_metadata(
    command: Sequence[str], env: Mapping[str, str] | None = None, artifact: str | None = None
) -> dict[str, str]:
    """Metadata items that make the local provider run `command` with `env` and `artifact`."""
    items = {COMMAND_KEY: json.dumps(list(command))}
    for name, value in (env or {}).items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"'{name}' is not an environment variable name")
        items[ENV_PREFIX + name] = value
    if artifact:
        items[ARTIFACT_KEY] = artifact
    return items
