"""Cloud Run services on disk, as Google keeps a project's (docs/decisions/1708): one owner-only
JSON file per service, `.mlplane/agent/cloudrun/NAME.json`, replaced atomically on every change
the agent accepts and again when its operation ends, so that a restarted agent finds each
service as it was: its last accepted body, its revisions (names, creation times, templates,
states and messages as the views report them), its generation and its port (its `uri`).

What is running is not written: a restarted agent starts the serving revisions again. A file
that cannot be read back stops the agent's start with one error naming it and the way out, as
a resource's does (docs/decisions/1600); nothing is dropped silently. `mlplane down` keeps the
files: nothing else holds a service's revisions (the images `build-images` rolled).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from mlplane.errors import ConfigError
from mlplane.providers.local.paths import write_atomic

from .cloudrun import STATES, RevisionRecord, ServiceRecord
from .records import damaged

FORMAT = 1
AWAY = (
    "move the file away to start without that service (a service the project declares is "
    "then created again from its declared image), or restore it from a copy"
)


class RunFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / f"{quote(name, safe='')}.json"

    def save(self, svc: ServiceRecord) -> None:
        if not self.root.is_dir():
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path(svc.name), json.dumps(to_json(svc), separators=(",", ":")))

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def load(self) -> list[ServiceRecord]:
        """Every stored service; ConfigError naming the first file that cannot be read back."""
        if not self.root.is_dir():
            return []
        out = []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith("."):  # a temporary file of a write the agent died in
                path.unlink(missing_ok=True)
                continue
            if path.suffix != ".json":
                continue
            try:
                svc = from_json(json.loads(path.read_text()))
            except json.JSONDecodeError as exc:
                raise _damaged(path, f"not JSON: {exc.msg} at line {exc.lineno}") from None
            except KeyError as exc:
                raise _damaged(path, f"no field {exc}") from None
            except (OSError, ValueError, TypeError) as exc:
                raise _damaged(path, str(exc) or type(exc).__name__) from None
            if svc.name != unquote(path.stem):
                raise _damaged(path, f"it holds service '{svc.name}', not the one its path names")
            out.append(svc)
        return out


def _damaged(path: Path, why: str) -> ConfigError:
    return damaged(path, why, AWAY, "every Cloud Run service it recorded")


def to_json(svc: ServiceRecord) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "name": svc.name,
        "location": svc.location,
        "uid": svc.uid,
        "body": svc.body,
        "creator": svc.creator,
        "lastModifier": svc.last_modifier,
        "port": svc.port,
        "generation": svc.generation,
        "createdAt": svc.created,
        "updatedAt": svc.updated,
        "reconciling": svc.reconciling,
        "failure": svc.failure,
        "revisions": [
            {
                "name": r.name,
                "uid": r.uid,
                "generation": r.generation,
                "template": r.template,
                "createdAt": r.created,
                "state": r.state,
                "message": r.message,
            }
            for r in svc.revisions.values()
        ],
    }


def from_json(data: Any) -> ServiceRecord:
    d = _object(data, "the file")
    if d.get("format") != FORMAT:
        raise ValueError(f"format {d.get('format')!r}, this agent reads format {FORMAT}")
    name = _str(d, "name")
    body = _object(d["body"], "body")
    containers = _object(body.get("template"), "body.template").get("containers")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise ValueError("body.template.containers is not a list of containers")
    svc = ServiceRecord(
        name,
        _str(d, "location"),
        body,
        _str(d, "creator"),
        _int(d, "port"),
        generation=_int(d, "generation"),
        uid=_str(d, "uid"),
        created=_float(d, "createdAt"),
        updated=_float(d, "updatedAt"),
        last_modifier=_str(d, "lastModifier"),
        reconciling=bool(d.get("reconciling", False)),
        failure=_str(d, "failure"),
    )
    revisions = d["revisions"]
    if not isinstance(revisions, list):
        raise ValueError("revisions is not a list")
    for i, item in enumerate(revisions):
        r = _object(item, f"revisions[{i}]")
        state = _str(r, "state")
        if state not in STATES:
            raise ValueError(f"revisions[{i}].state {state!r} is not one of {', '.join(STATES)}")
        rev = RevisionRecord(
            _str(r, "name"),
            name,
            _int(r, "generation"),
            _object(r["template"], f"revisions[{i}].template"),
            created=_float(r, "createdAt"),
            state=state,
            message=_str(r, "message"),
            uid=_str(r, "uid"),
        )
        svc.revisions[rev.name] = rev
    return svc


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return value


def _str(d: dict[str, Any], key: str) -> str:
    value = d[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} {value!r} is not a string")
    return value


def _int(d: dict[str, Any], key: str) -> int:
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} {value!r} is not an integer")
    return value


def _float(d: dict[str, Any], key: str) -> float:
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} {value!r} is not a number")
    return float(value)
