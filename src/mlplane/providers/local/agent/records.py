"""The agent's resources on disk, as Google keeps a project's: one owner-only JSON file per
resource under `.mlplane/agent/resources/KIND/NAME.json`, replaced atomically (a temporary file
and a rename) on every change, so that a killed agent's successor finds each resource exactly
as it was last written, never half of it.

A file holds the record (spec, owner, state, generation, id, creation time) and what the
runtime last observed (`Observed`: an instance's status, exit code and port; a group's live
size and replica names). A file that cannot be read back stops the agent's start with one
error naming it and saying how to recover; nothing is dropped silently.

Not fsynced: the files survive the agent's death (the page cache is the kernel's), and on a
machine crash the rename still leaves either the old or the new file (docs/decisions/1600).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from pydantic import ValidationError

from mlplane.errors import ConfigError
from mlplane.model.compute import ResourceKey, spec_from_data, spec_to_data
from mlplane.providers.local.paths import write_atomic

from .store import Observed, Record, RequestTrace

FORMAT = 1


class RecordFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: ResourceKey) -> Path:
        return self.root / key.kind / f"{quote(key.name, safe='')}.json"

    def save(self, rec: Record) -> None:
        path = self.path(rec.key)
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, json.dumps(to_json(rec), separators=(",", ":")), mode=0o600)

    def delete(self, key: ResourceKey) -> None:
        self.path(key).unlink(missing_ok=True)

    def _files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        out = []
        for kind in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for path in sorted(kind.iterdir()):
                if path.name.startswith("."):  # a temporary file of a write the agent died in
                    path.unlink(missing_ok=True)
                elif path.suffix == ".json":
                    out.append(path)
        return out

    def load(self) -> list[Record]:
        """Every stored record; ConfigError naming the first file that cannot be read back."""
        records = []
        for path in self._files():
            try:
                data = json.loads(path.read_text())
                rec = from_json(data)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise damaged(path, _reason(exc)) from None
            if rec.key != ResourceKey(path.parent.name, unquote(path.stem)):
                raise damaged(path, f"it holds {rec.key}, not the resource its path names")
            records.append(rec)
        return records


AWAY = (
    "move the file away to start without that resource (the team state still records it, and "
    "the next apply that needs it recreates it), or restore it from a copy"
)


def damaged(
    path: Path, why: str, away: str = AWAY, what: str = "every resource it recorded"
) -> ConfigError:
    """The one-line error of a file the agent cannot read back: it does not start."""
    return ConfigError(
        str(path), "", f"cannot be read back ({why}); the agent starts only with {what}: {away}"
    )


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"spec {where}: {first.get('msg', 'invalid')}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc.msg} at line {exc.lineno}"
    if isinstance(exc, KeyError):
        return f"no field {exc}"
    return str(exc) or type(exc).__name__


def to_json(rec: Record) -> dict[str, Any]:
    o = rec.observed
    return {
        "format": FORMAT,
        "kind": rec.key.kind,
        "name": rec.key.name,
        "id": rec.id,
        "owner": rec.owner,
        "state": rec.state,
        "generation": rec.generation,
        "createdAt": rec.created_at,
        "spec": spec_to_data(rec.spec),
        "observed": {
            "status": o.status,
            "exitCode": o.exit_code,
            "port": o.port,
            "targetSize": o.target_size,
            "replicas": list(o.replicas),
        },
        "requests": [
            {
                "requestId": t.request_id,
                "name": t.name,
                "verb": t.verb,
                "scope": t.scope,
                "opType": t.op_type,
                "user": t.user,
                "inserted": t.inserted,
                "id": t.id,
                "error": list(t.error) if t.error else None,
            }
            for t in rec.requests
        ],
    }


def from_json(data: Any) -> Record:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("format") != FORMAT:
        raise ValueError(f"format {data.get('format')!r}, this agent reads format {FORMAT}")
    spec = spec_from_data(str(data["kind"]), data["spec"])
    if spec.name != data["name"]:
        raise ValueError(f"name '{data['name']}' but its spec names '{spec.name}'")
    o = data.get("observed") or {}
    observed = Observed(
        status=str(o.get("status") or ""),
        exit_code=_int(o.get("exitCode")),
        port=_int(o.get("port")),
        target_size=_int(o.get("targetSize")),
        replicas=tuple(str(r) for r in o.get("replicas") or ()),
    )
    return Record(
        spec,
        owner=str(data["owner"]),
        state=str(data["state"]),
        generation=int(data["generation"]),
        created_at=float(data["createdAt"]),
        id=str(data["id"]),
        observed=observed,
        requests=tuple(_trace(t) for t in data.get("requests") or ()),
    )


def _trace(t: Any) -> RequestTrace:
    error = t.get("error")
    return RequestTrace(
        request_id=str(t["requestId"]),
        name=str(t["name"]),
        verb=str(t["verb"]),
        scope=str(t["scope"]),
        op_type=str(t["opType"]),
        user=str(t["user"]),
        inserted=float(t["inserted"]),
        id=str(t["id"]),
        error=(str(error[0]), str(error[1]), _int(error[2])) if error else None,
    )


def _int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    return value
