"""The agent's resources: one record per (kind, name), with owner, generation and fingerprint.

In memory only: `mlplane down` tears every local resource down, and the engine's state store
plus `get` (NotFound) makes the next apply recreate them (docs/decisions/0301-local-agent.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field

from mlplane.model.compute import ResourceKey, ResourceSpec, spec_to_data
from mlplane.providers.errors import InvalidRequest, NotFound, ProviderUnavailable


class State:
    PROVISIONING = "PROVISIONING"
    READY = "READY"
    UPDATING = "UPDATING"
    DELETING = "DELETING"


@dataclass
class Record:
    spec: ResourceSpec
    owner: str
    state: str = State.PROVISIONING
    generation: int = 1
    created_at: float = field(default_factory=time.time)
    busy: str | None = None  # the operation working on it
    id: str = field(default_factory=lambda: str(10**18 + secrets.randbelow(8 * 10**18)))

    @property
    def key(self) -> ResourceKey:
        return self.spec.key

    @property
    def fingerprint(self) -> str:
        data = json.dumps(spec_to_data(self.spec), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(f"{self.generation}:{data}".encode()).digest()
        return base64.urlsafe_b64encode(digest[:9]).decode()


class ResourceStore:
    def __init__(self) -> None:
        self.records: dict[ResourceKey, Record] = {}
        self._by_kind: dict[str, dict[str, Record]] = {}  # kind -> name -> record

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

    def add(self, rec: Record) -> None:
        self.records[rec.key] = rec
        self._by_kind.setdefault(rec.key.kind, {})[rec.key.name] = rec

    def remove(self, key: ResourceKey) -> None:
        self.records.pop(key, None)
        self._by_kind.get(key.kind, {}).pop(key.name, None)

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
