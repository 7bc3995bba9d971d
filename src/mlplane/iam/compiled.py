"""The synthesized IAM, flattened for fast decisions and cached as JSON.

Hot paths (`mlplane iam check`, the engine, the local agent) decide on a CompiledPolicy; it is
built from the model once and cached next to the project file, keyed by the hash of everything
it was built from, so they never import pydantic or the 6 MB role catalog.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlplane

CACHE_FORMAT = 1


@dataclass(frozen=True)
class CompiledGrant:
    scope_kind: str
    scope_name: str
    role: str
    condition_type: str = ""
    condition_prefix: str = ""


@dataclass(frozen=True)
class ActionGrant:
    scope_kind: str
    scope_name: str
    permissions: tuple[str, ...]
    condition_type: str = ""
    condition_prefix: str = ""


@dataclass(frozen=True)
class ActionInfo:
    id: str
    process: str
    who: str
    requirement: str
    reason: str
    via_triggers: tuple[str, ...]
    grants: tuple[ActionGrant, ...]


@dataclass(frozen=True)
class TriggerInfo:
    name: str
    process: str
    runs_as: str  # service-account email
    event: str
    usage: str


@dataclass
class CompiledPolicy:
    project: str
    # member -> permission -> grants
    grants: dict[str, dict[str, list[CompiledGrant]]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)  # group email -> user emails
    identities: dict[str, str] = field(default_factory=dict)  # identity id -> email
    actions: dict[str, ActionInfo] = field(default_factory=dict)
    triggers: dict[str, TriggerInfo] = field(default_factory=dict)
    process_members: dict[str, list[str]] = field(default_factory=dict)
    holders: dict[str, list[str]] = field(default_factory=dict)  # action id -> holders

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CompiledPolicy:
        d: dict[str, Any] = json.loads(text)
        return cls(
            project=d["project"],
            grants={
                m: {p: [CompiledGrant(**g) for g in gs] for p, gs in perms.items()}
                for m, perms in d["grants"].items()
            },
            groups=d["groups"],
            identities=d["identities"],
            actions={
                k: ActionInfo(
                    **{**v, "via_triggers": tuple(v["via_triggers"])}
                    | {
                        "grants": tuple(
                            ActionGrant(**{**g, "permissions": tuple(g["permissions"])})
                            for g in v["grants"]
                        )
                    }
                )
                for k, v in d["actions"].items()
            },
            triggers={k: TriggerInfo(**v) for k, v in d["triggers"].items()},
            process_members=d["process_members"],
            holders=d["holders"],
        )


def cache_key(project_bytes: bytes) -> str:
    shipped = (Path(mlplane.__file__).parent / "model" / "operational_model.toml").read_bytes()
    h = hashlib.sha256()
    for part in (str(CACHE_FORMAT).encode(), mlplane.__version__.encode(), shipped, project_bytes):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def cache_path(project_path: Path) -> Path:
    return project_path.resolve().parent / ".mlplane" / "cache" / "iam-policy.json"


def read_cached(project_path: Path, key: str) -> CompiledPolicy | None:
    try:
        raw = cache_path(project_path).read_text()
        head, _, body = raw.partition("\n")
        return CompiledPolicy.from_json(body) if head == key else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_cached(project_path: Path, key: str, policy: CompiledPolicy) -> None:
    """Atomic write (temp file + rename); a cache that cannot be written is not an error."""
    import tempfile

    path = cache_path(project_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".iam-policy.")
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n" + policy.to_json())
        os.replace(tmp, path)
    except OSError:
        pass


def policy_for(project_path: Path | str) -> CompiledPolicy:
    """The compiled policy of a project file: from the cache when it is current, else built from
    the model (and cached). Raises ConfigError on bad input, like load_project."""
    path = Path(project_path)
    try:
        data = path.read_bytes()
    except OSError:
        data = b""  # load_project below reports the error with the file name
    key = cache_key(data)
    cached = read_cached(path, key) if data else None
    if cached is not None:
        return cached
    from mlplane.iam.compile import compile_policy  # the slow path: pydantic, the catalog
    from mlplane.iam.loading import load_project
    from mlplane.iam.synthesis import synthesize

    loaded = load_project(path)
    policy = compile_policy(loaded, synthesize(loaded))
    write_cached(path, key, policy)
    return policy
