"""The synthesized IAM, flattened for fast decisions and cached as JSON.

Hot paths (`mlplane iam check`, the engine, the local agent) decide on a CompiledPolicy. It is
built from the model once and cached next to the project file, keyed by a hash of everything it
was built from, so those paths never import pydantic or the 6 MB role catalog. This module is on
the start-up path: no dataclasses, pathlib or hashlib at import (docs/decisions/0005).
"""

from __future__ import annotations

import os

import mlplane
from mlplane import jsonread
from mlplane.model.value import Value

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (start-up path)

if TYPE_CHECKING:
    from pathlib import Path

CACHE_FORMAT = 5
_SHIPPED = os.path.join(os.path.dirname(mlplane.__file__), "model", "operational_model.toml")


class CompiledGrant(Value):
    """A role's grant at a scope; `condition` is the IAM condition's CEL expression exactly as
    exported ("" = unconditional), evaluated by mlplane.iam.conditions."""

    __slots__ = ("scope_kind", "scope_name", "role", "condition")
    scope_kind: str
    scope_name: str
    role: str
    condition: str

    def __init__(self, scope_kind: str, scope_name: str, role: str, condition: str = "") -> None:
        self._set(scope_kind=scope_kind, scope_name=scope_name, role=role, condition=condition)


class ActionGrant(Value):
    __slots__ = ("scope_kind", "scope_name", "permissions", "condition")
    scope_kind: str
    scope_name: str
    permissions: tuple[str, ...]
    condition: str

    def __init__(
        self,
        scope_kind: str,
        scope_name: str,
        permissions: tuple[str, ...],
        condition: str = "",
    ) -> None:
        self._set(
            scope_kind=scope_kind,
            scope_name=scope_name,
            permissions=tuple(permissions),
            condition=condition,
        )


class ActionInfo(Value):
    __slots__ = ("id", "process", "who", "requirement", "reason", "via_triggers", "grants")
    id: str
    process: str
    who: str
    requirement: str
    reason: str
    via_triggers: tuple[str, ...]
    grants: tuple[ActionGrant, ...]

    def __init__(
        self,
        id: str,
        process: str,
        who: str,
        requirement: str,
        reason: str,
        via_triggers: tuple[str, ...],
        grants: tuple[ActionGrant, ...],
    ) -> None:
        self._set(
            id=id,
            process=process,
            who=who,
            requirement=requirement,
            reason=reason,
            via_triggers=tuple(via_triggers),
            grants=tuple(grants),
        )


class TriggerInfo(Value):
    __slots__ = ("name", "process", "runs_as", "event", "usage")
    name: str
    process: str
    runs_as: str  # service-account email
    event: str
    usage: str

    def __init__(self, name: str, process: str, runs_as: str, event: str, usage: str) -> None:
        self._set(name=name, process=process, runs_as=runs_as, event=event, usage=usage)


def _row(v: Value) -> list[object]:
    return [[_row(x) for x in f] if isinstance(f, tuple) and f and isinstance(f[0], Value)
            else f for f in v._key()]  # fmt: skip


class CompiledPolicy:
    """Grants per member and permission, plus what denials need to name a sanctioned path."""

    def __init__(
        self, project: str, identities: dict[str, str] | None = None, provider: str = "local"
    ) -> None:
        self.project = project
        self.provider = provider  # `[project] provider`: local or gcp
        # member -> permission -> grants
        self.grants: dict[str, dict[str, list[CompiledGrant]]] = {}
        self.groups: dict[str, list[str]] = {}  # group email -> user emails
        self.identities: dict[str, str] = dict(identities or {})  # identity id -> email
        self.actions: dict[str, ActionInfo] = {}
        self.triggers: dict[str, TriggerInfo] = {}
        self.process_members: dict[str, list[str]] = {}
        self.holders: dict[str, list[str]] = {}  # action id -> holders
        # [team] admins: they hold roles/owner, outside the model (as on GCP)
        self.admins: list[str] = []

    def to_json(self) -> str:
        import json

        grant_rows: list[list[object]] = []
        index: dict[CompiledGrant, int] = {}
        members: dict[str, dict[str, list[int]]] = {}
        for member, perms in self.grants.items():
            for perm, grants in perms.items():
                ids = []
                for g in grants:
                    if g not in index:
                        index[g] = len(grant_rows)
                        grant_rows.append(_row(g))
                    ids.append(index[g])
                members.setdefault(member, {})[perm] = ids
        return json.dumps(
            {
                "project": self.project,
                "provider": self.provider,
                "grant_rows": grant_rows,
                "grants": members,
                "groups": self.groups,
                "identities": self.identities,
                "actions": [_row(a) for a in self.actions.values()],
                "triggers": [_row(t) for t in self.triggers.values()],
                "process_members": self.process_members,
                "holders": self.holders,
                "admins": self.admins,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> CompiledPolicy:
        d = jsonread.loads(text)
        p = cls(d["project"], d["identities"], d["provider"])
        rows = [CompiledGrant(*r) for r in d["grant_rows"]]
        p.grants = {
            m: {perm: [rows[i] for i in ids] for perm, ids in perms.items()}
            for m, perms in d["grants"].items()
        }
        p.groups = d["groups"]
        for a in d["actions"]:
            grants = tuple(ActionGrant(*g) for g in a[6])
            info = ActionInfo(a[0], a[1], a[2], a[3], a[4], tuple(a[5]), grants)
            p.actions[info.id] = info
        p.triggers = {t[0]: TriggerInfo(*t) for t in d["triggers"]}
        p.process_members = d["process_members"]
        p.holders = d["holders"]
        p.admins = d.get("admins", [])
        return p


def _stamp(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_mtime_ns, st.st_size, st.st_ino]


def cache_key(project_bytes: bytes) -> str:
    import hashlib

    with open(_SHIPPED, "rb") as f:
        shipped = f.read()
    h = hashlib.sha256()
    for part in (str(CACHE_FORMAT).encode(), mlplane.__version__.encode(), shipped, project_bytes):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def cache_path(project_path: str | Path) -> str:
    directory = os.path.dirname(os.path.abspath(project_path))
    return os.path.join(directory, ".mlplane", "cache", "iam-policy.json")


def _read_cache(project_path: str | Path) -> tuple[dict[str, object], str] | None:
    try:
        with open(cache_path(project_path)) as f:
            head, _, body = f.read().partition("\n")
        return jsonread.loads(head), body
    except (OSError, ValueError):
        return None


def write_cached(
    project_path: str | Path, key: str, policy: CompiledPolicy, stamps: list[list[int]] | None
) -> None:
    """Atomic write (temp file + rename); a cache that cannot be written is not an error.
    `stamps` must be taken before the content that `key` hashes was read."""
    import json
    import tempfile

    path = cache_path(project_path)
    header = {
        "key": key,
        "format": CACHE_FORMAT,
        "version": mlplane.__version__,
        "stamps": stamps,
        "project": policy.project,  # for project_and_provider, without decoding the policy
        "provider": policy.provider,
    }
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".iam-policy.")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(header) + "\n" + policy.to_json())
        os.replace(tmp, path)
    except OSError:
        pass


def _stamps(path: str) -> list[list[int]] | None:
    """What the cache records of the project file and the shipped model: changed, they are
    hashed again."""
    try:
        return [_stamp(path), _stamp(_SHIPPED)]
    except OSError:
        return None


def _current(header: dict[str, object], stamps: list[list[int]] | None) -> bool:
    """Whether a cache with `header` was written by this mlplane, in this format."""
    return (
        header.get("format") == CACHE_FORMAT
        and header.get("version") == mlplane.__version__
        and stamps is not None
    )


def project_and_provider(project_path: str | Path) -> tuple[str, str]:
    """`policy_for(project_path)`'s project id and provider: from the cache's first line when
    its stamps are current, without decoding the policy (the start-up path of `mlplane status`
    and the lists, decision 0017); else through policy_for."""
    path = str(project_path)
    try:
        with open(cache_path(path)) as f:
            header = jsonread.loads(f.readline())
    except (OSError, ValueError):
        header = None
    if isinstance(header, dict):
        stamps = _stamps(path)
        project, provider = header.get("project"), header.get("provider")
        if (
            _current(header, stamps)
            and header.get("stamps") == stamps
            and isinstance(project, str)
            and isinstance(provider, str)
        ):
            return project, provider
    policy = policy_for(path)
    return policy.project, policy.provider


def policy_for(project_path: str | Path) -> CompiledPolicy:
    """The compiled policy of a project file: from the cache when it is current, else built from
    the model (and cached). Raises ConfigError on bad input, like load_project.

    Current means: the project file and the shipped model have the (mtime, size, inode) recorded
    in the cache, or failing that, the same content hash."""
    path = str(project_path)
    cached = _read_cache(path)
    stamps = _stamps(path)
    if stamps is not None and not os.path.isfile(path):
        stamps = None  # a directory, say: load_project says what is wrong with it
    if cached is not None:
        header, body = cached
        fresh = _current(header, stamps)
        if fresh and header.get("stamps") == stamps:
            return CompiledPolicy.from_json(body)
        if fresh:
            with open(path, "rb") as f:
                key = cache_key(f.read())
            if header.get("key") == key:
                policy = CompiledPolicy.from_json(body)
                write_cached(path, key, policy, stamps)  # refresh the stamps
                return policy
    from pathlib import Path

    from mlplane.iam.compile import compile_policy  # the slow path: pydantic, the catalog
    from mlplane.iam.loading import load_project
    from mlplane.iam.synthesis import synthesize

    key = ""
    if stamps is not None:  # else the file is missing: load_project reports it
        with open(path, "rb") as f:
            key = cache_key(f.read())
    loaded = load_project(Path(path))
    policy = compile_policy(loaded, synthesize(loaded))
    write_cached(path, key, policy, stamps)
    return policy
