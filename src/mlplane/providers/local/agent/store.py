"""The agent's resources: one record per (kind, name), with owner, generation and fingerprint.

Held in memory and, when the store has files (`records.RecordFiles`), written through on every
change, so that an agent started after a killed one restores them (docs/decisions/1600).
`mlplane down` removes them: the engine's state store plus `get` (NotFound) then makes the next
apply recreate what it needs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlplane.model.compute import ResourceKey, ResourceSpec, spec_to_data
from mlplane.providers.errors import InvalidRequest, NotFound, ProviderUnavailable

if TYPE_CHECKING:
    from .records import RecordFiles

log = logging.getLogger(__name__)


class State:
    PROVISIONING = "PROVISIONING"
    READY = "READY"
    UPDATING = "UPDATING"
    DELETING = "DELETING"


@dataclass(frozen=True)
class Observed:
    """What the runtime last reported of a resource, kept with its record so that a restarted
    agent re-creates it as it was: an instance's status, exit code and port; a managed group's
    live (autoscaled) size and its replicas' names."""

    status: str = ""
    exit_code: int | None = None
    port: int | None = None
    target_size: int | None = None
    replicas: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestTrace:
    """An operation on a record, kept with it so that a request retried with the same
    `requestId` gets that operation back, also from an agent started after a killed one (as
    Google's requestId deduplication outlives its servers)."""

    request_id: str
    name: str
    verb: str
    scope: str
    op_type: str
    user: str
    inserted: float
    id: str
    error: tuple[str, str, int | None] | None = None  # code, message, HTTP status


TRACES_KEPT = 4  # per record: the retries that matter come minutes, not many calls, later


@dataclass
class Record:
    spec: ResourceSpec
    owner: str
    state: str = State.PROVISIONING
    generation: int = 1
    created_at: float = field(default_factory=time.time)
    busy: str | None = None  # the operation working on it
    id: str = field(default_factory=lambda: str(10**18 + secrets.randbelow(8 * 10**18)))
    observed: Observed = Observed()
    requests: tuple[RequestTrace, ...] = ()

    @property
    def key(self) -> ResourceKey:
        return self.spec.key

    @property
    def fingerprint(self) -> str:
        data = json.dumps(spec_to_data(self.spec), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(f"{self.generation}:{data}".encode()).digest()
        return base64.urlsafe_b64encode(digest[:9]).decode()


class ResourceStore:
    def __init__(self, files: RecordFiles | None = None) -> None:
        self.records: dict[ResourceKey, Record] = {}
        self._by_kind: dict[str, dict[str, Record]] = {}  # kind -> name -> record
        self.files = files

    def get(self, key: ResourceKey) -> Record | None:
        return self.records.get(key)

    def require(self, key: ResourceKey) -> Record:
        rec = self.records.get(key)
        if rec is None:
            raise NotFound(f"The resource '{key}' was not found", key)
        return rec

    def of_kind(self, kind: str) -> list[Record]:
        """Records of one kind by name: O(k log k) in that kind's count, not all records."""
        named = self._by_kind.get(kind, {})
        return [named[n] for n in sorted(named)]

    def specs(self, kind: str) -> list[ResourceSpec]:
        return [r.spec for r in self.of_kind(kind)]

    def add(self, rec: Record, *, save: bool = True) -> None:
        self.records[rec.key] = rec
        self._by_kind.setdefault(rec.key.kind, {})[rec.key.name] = rec
        if save:
            self.save(rec)

    def remove(self, key: ResourceKey) -> None:
        self.records.pop(key, None)
        self._by_kind.get(key.kind, {}).pop(key.name, None)
        if self.files is not None:
            self.files.delete(key)

    def save(self, rec: Record) -> None:
        """Write `rec` through to its file (after any change of its spec, state or generation);
        a record no longer in the store is not written back."""
        if self.files is not None and self.records.get(rec.key) is rec:
            self.files.save(rec)

    def observe(self, key: ResourceKey, observed: Observed) -> None:
        """The runtime's latest report of `key`, kept with its record (written if it changed)."""
        rec = self.records.get(key)
        if rec is None or rec.observed == observed:
            return
        rec.observed = observed
        try:
            self.save(rec)
        except OSError as exc:  # the report is refreshed on the next change; never stop a runtime
            log.warning("cannot record what %s runs: %s", key, exc)

    def load(self) -> list[Record]:
        """The records a previous agent left (RecordFiles.load: ConfigError on a damaged file)."""
        if self.files is None:
            return []
        records = self.files.load()
        for rec in records:
            self.add(rec, save=False)
        return records

    def referrers(self, key: ResourceKey) -> list[ResourceKey]:
        return sorted(k for k, r in self.records.items() if k != key and key in r.spec.references())

    def check_references(self, spec: ResourceSpec) -> None:
        """Every resource `spec` refers to exists and is not being deleted."""
        for ref in spec.references():
            rec = self.records.get(ref)
            if rec is None:
                raise InvalidRequest(
                    f"{spec.key} refers to {ref}, which does not exist (create it first)", spec.key
                )
            if rec.state == State.DELETING:
                raise ProviderUnavailable(
                    f"{spec.key} refers to {ref}, which is being deleted", spec.key, delay=1.0
                )
