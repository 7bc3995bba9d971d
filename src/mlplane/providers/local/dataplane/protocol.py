"""What crosses the control socket between the agent and the data plane: typed messages, sent as
one JSON object per line.

    -> {"op": "hello"}                <- {"pid", "startedAt", "version", "listeners": {name: port}}
    -> {"op": "apply", "config": {...}}           <- {"version", "listeners": {name: error|""}}
    -> {"op": "poll", "since": SEQ, "wait": S}    <- {"seq", "at", "health": [...], "loads": {...}}
    -> {"op": "shutdown", "drainSec": S}          <- {"ok": true}, then the process exits

A configuration is whole and versioned: the data plane validates all of it, then swaps it in
between two requests (or keeps the one it has and says why not). Listeners named in `keep`
and absent from `listeners` are left as they run: an agent that adopted a running data plane
keeps its ports open until it has recovered its forwarding rules.

`poll` answers only what changed since `since` (health transitions, loads of backend services
that saw traffic), so its cost follows change, not the number of revisions. It is a long poll:
it answers at once when health changed after `since`, else at the first change or after `wait`
seconds (the agent polls on a connection of its own, so an apply never waits behind it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlplane.errors import ConfigError
from mlplane.providers.local.lb import BackendService, UrlMap, parse_config
from mlplane.providers.local.lb.config_json import config_to_json

from .health import CheckSpec, Health

MAX_LINE = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Listener:
    """One forwarding rule: its port and what its target proxy's URL map routes to."""

    name: str
    port: int
    url_map: UrlMap
    services: tuple[BackendService, ...]


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """Probe `port` with check `check`; `owner` names the process behind the port (a replica
    and its pid), so a port reused by another process starts from UNKNOWN."""

    port: int
    check: str
    owner: str


@dataclass(frozen=True, slots=True)
class DataPlaneConfig:
    listeners: tuple[Listener, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    targets: tuple[ProbeTarget, ...] = ()
    version: int = 0
    keep: tuple[str, ...] = ()
    drain_sec: float = 1.0  # in-flight requests of a listener that goes

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "listeners": [
                {"name": li.name, "port": li.port, **config_to_json(li.url_map, li.services)}
                for li in self.listeners
            ],
            "checks": [
                {
                    "name": c.name,
                    "requestPath": c.request_path,
                    "host": c.host,
                    "checkIntervalSec": c.interval_sec,
                    "timeoutSec": c.timeout_sec,
                    "healthyThreshold": c.healthy_threshold,
                    "unhealthyThreshold": c.unhealthy_threshold,
                }
                for c in self.checks
            ],
            "targets": [{"port": t.port, "check": t.check, "owner": t.owner} for t in self.targets],
            "keep": list(self.keep),
            "drainSec": self.drain_sec,
        }

    @classmethod
    def from_json(cls, doc: Any) -> DataPlaneConfig:
        """Raises ConfigError naming the first problem."""
        try:
            listeners = []
            for i, li in enumerate(doc.get("listeners", [])):
                lb = {"urlMap": li["urlMap"], "backendServices": li["backendServices"]}
                parsed = parse_config(lb, source=f"listeners[{i}] ('{li['name']}')")
                port = int(li["port"])
                listeners.append(
                    Listener(str(li["name"]), port, parsed.url_map, parsed.backend_services)
                )
            checks = tuple(
                CheckSpec(
                    name=str(c["name"]),
                    request_path=str(c["requestPath"]),
                    host=str(c.get("host", "")),
                    interval_sec=float(c["checkIntervalSec"]),
                    timeout_sec=float(c["timeoutSec"]),
                    healthy_threshold=int(c["healthyThreshold"]),
                    unhealthy_threshold=int(c["unhealthyThreshold"]),
                )
                for c in doc.get("checks", [])
            )
            targets = tuple(
                ProbeTarget(int(t["port"]), str(t["check"]), str(t["owner"]))
                for t in doc.get("targets", [])
            )
            version = int(doc.get("version", 0))
            keep = tuple(str(k) for k in doc.get("keep", []))
            drain_sec = float(doc.get("drainSec", 1.0))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError("data plane config", "", f"malformed: {exc!r}") from None
        names = {c.name for c in checks}
        for t in targets:
            if t.check not in names:
                raise ConfigError("data plane config", "targets", f"unknown check '{t.check}'")
        return cls(tuple(listeners), checks, targets, version, keep, drain_sec)


@dataclass(frozen=True, slots=True)
class HealthReport:
    port: int
    check: str
    owner: str
    state: Health
    successes: int
    failures: int

    def to_json(self) -> list[Any]:
        return [self.port, self.check, self.owner, str(self.state), self.successes, self.failures]

    @classmethod
    def from_json(cls, v: list[Any]) -> HealthReport:
        return cls(int(v[0]), str(v[1]), str(v[2]), Health(v[3]), int(v[4]), int(v[5]))


@dataclass(frozen=True, slots=True)
class Load:
    """A backend service's counters: requests in flight now, requests served, and busy
    request-seconds (the integral of in-flight over time: its slope is the mean load)."""

    in_flight: int
    total: int
    busy: float


@dataclass(frozen=True, slots=True)
class PollReply:
    seq: int
    at: float  # CLOCK_MONOTONIC of the data plane (the same clock as the agent's on Linux)
    health: tuple[HealthReport, ...] = ()
    loads: dict[str, Load] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "health": [h.to_json() for h in self.health],
            "loads": {n: [x.in_flight, x.total, x.busy] for n, x in self.loads.items()},
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PollReply:
        return cls(
            int(doc["seq"]),
            float(doc["at"]),
            tuple(HealthReport.from_json(h) for h in doc["health"]),
            {n: Load(int(v[0]), int(v[1]), float(v[2])) for n, v in doc["loads"].items()},
        )


def encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    doc = json.loads(line)
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object")
    return doc
