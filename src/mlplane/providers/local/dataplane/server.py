"""The data plane: the load balancers of every forwarding rule and the health checking of every
replica, in a process of its own, driven through a control socket by the agent.

`DataPlane.apply` swaps in a whole configuration: listeners are opened, re-routed or closed
(in-flight requests finish), probe targets are started or stopped, and each endpoint's health
comes from this process's own probes, pushed into the load balancer the moment it changes.
Nothing here waits on the agent: a stalled or restarted agent leaves traffic and probes running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from mlplane.errors import ConfigError
from mlplane.providers.local.lb import BackendService, Endpoint, validate

from .health import CheckSpec, Health, HealthTrack, Prober
from .protocol import (
    MAX_LINE,
    DataPlaneConfig,
    HealthReport,
    Listener,
    Load,
    PollReply,
    ProbeTarget,
    decode,
    encode,
)
from .pyproxies import PythonProxies

log = logging.getLogger(__name__)
DRAIN_SEC = 1.0
TargetKey = tuple[int, str, str]  # port, check, owner


class Proxies(Protocol):
    """What serves the listeners: the Python load balancers here, or a supervised haproxy."""

    async def apply(
        self, listeners: Sequence[Listener], keep: Sequence[str], drain_sec: float
    ) -> dict[str, str]: ...

    def set_endpoints(self, listener: str, service: str, endpoints: Sequence[Endpoint]) -> None: ...

    def loads(self, now: float) -> dict[str, tuple[int, int, float]]: ...

    def ports(self) -> dict[str, int]: ...

    async def stop(self, drain_sec: float) -> None: ...


class DataPlane:
    def __init__(self, proxies: Proxies | None = None, proxy_kind: str = "python") -> None:
        self.config = DataPlaneConfig()
        self.proxies: Proxies = proxies if proxies is not None else PythonProxies()
        self.proxy_kind = proxy_kind
        self.probers: dict[TargetKey, Prober] = {}
        self.health: dict[TargetKey, tuple[int, HealthTrack]] = {}  # seq order, newest last
        self.seq = 0
        self.started_at = time.time()
        self.stopping = asyncio.Event()
        self._gated: dict[tuple[int, str], list[tuple[str, str]]] = {}  # -> (listener, service)
        self._services: dict[tuple[str, str], BackendService] = {}
        self._owner_of: dict[tuple[int, str], str] = {}
        self._reported: dict[str, tuple[int, int]] = {}
        self.clients = 0  # control connections ever made
        self._news = asyncio.Event()  # a health record was made (wakes waiting polls)

    # -- configuration -------------------------------------------------------------------------

    async def apply(self, config: DataPlaneConfig) -> dict[str, str]:
        """Swap in `config`; returns {listener: "" or why it cannot listen}. Raises ConfigError
        (and keeps the running configuration) when any part of it is invalid."""
        for li in config.listeners:
            validate(li.url_map, li.services)
        self._apply_targets(config)
        self._gated, self._services = {}, {}
        listeners = [
            replace(li, services=tuple(self._gate(li.name, s) for s in li.services))
            for li in config.listeners
        ]
        errors = await self.proxies.apply(listeners, config.keep, config.drain_sec)
        # Probes that finished while this apply awaited (a listener opening) were pushed into
        # the state being replaced: gate every service on the health known now.
        for listener, name in list(self._services):
            self._regate(listener, name)
        self.config = config
        log.info("config %d: %d listeners, %d probe targets", config.version,
                 len(config.listeners), len(config.targets))  # fmt: skip
        return errors

    def _gate(self, listener: str, service: BackendService) -> BackendService:
        """The service with each checked endpoint's health taken from this process's probes."""
        self._services[(listener, service.name)] = service
        endpoints = []
        for ep in service.endpoints:
            if ep.health_check is not None:
                key = (ep.port, ep.health_check)
                self._gated.setdefault(key, []).append((listener, service.name))
                ep = replace(ep, healthy=self._healthy(key))
            endpoints.append(ep)
        return replace(service, endpoints=tuple(endpoints))

    def _healthy(self, key: tuple[int, str]) -> bool:
        owner = self._owner_of.get(key)
        entry = self.health.get((*key, owner)) if owner is not None else None
        return entry is not None and entry[1].state is Health.HEALTHY

    def _apply_targets(self, config: DataPlaneConfig) -> None:
        checks = {c.name: c for c in config.checks}
        wanted = {(t.port, t.check, t.owner): t for t in config.targets}
        for key in [k for k in self.probers if k not in wanted]:
            self.probers.pop(key).cancel()
            self.health.pop(key, None)
        self._owner_of = {(t.port, t.check): t.owner for t in config.targets}
        for key, target in wanted.items():
            check = checks[target.check]
            prober = self.probers.get(key)
            if prober is None:
                self._start_prober(key, target, check)
            else:
                prober.retarget(check)

    def _start_prober(self, key: TargetKey, target: ProbeTarget, check: CheckSpec) -> None:
        prober = Prober(target.port, check, self._on_health(key))
        self.probers[key] = prober
        self._record(key, prober.track)
        prober.start()

    def _on_health(self, key: TargetKey) -> Callable[[HealthTrack], None]:
        def changed(track: HealthTrack) -> None:
            before = self.health.get(key)
            self._record(key, track)
            if before is None or before[1].state is not track.state:
                log.info("%s on port %d (%s): %s", key[1], key[0], key[2], track.state)
                self._push_health((key[0], key[1]))

        return changed

    def _record(self, key: TargetKey, track: HealthTrack) -> None:
        self._news.set()
        self.seq += 1
        self.health.pop(key, None)  # re-inserted last: the dict stays in seq order
        self.health[key] = (self.seq, track)

    def _push_health(self, key: tuple[int, str]) -> None:
        """A probe result changed an endpoint's health: the load balancers hear it now."""
        for listener, name in self._gated.get(key, ()):
            self._regate(listener, name)

    def _regate(self, listener: str, name: str) -> None:
        service = self._services.get((listener, name))
        if service is None:
            return
        endpoints = [
            replace(ep, healthy=self._healthy((ep.port, ep.health_check)))
            if ep.health_check is not None
            else ep
            for ep in service.endpoints
        ]
        self.proxies.set_endpoints(listener, name, endpoints)

    # -- reporting -----------------------------------------------------------------------------

    def poll(self, since: int) -> PollReply:
        """Health that changed after `since` (everything when 0), and the loads of backend
        services that saw traffic since the last poll (all of them when `since` is 0)."""
        reports = []
        for key, (seq, track) in reversed(self.health.items()):
            if seq <= since:
                break
            reports.append(HealthReport(*key, track.state, track.successes, track.failures))
        now = time.monotonic()
        loads: dict[str, Load] = {}
        for name, (in_flight, total, busy) in self.proxies.loads(now).items():
            loads[name] = Load(in_flight, total, busy)
        if since:
            changed = {
                n: x
                for n, x in loads.items()
                if x.in_flight or self._reported.get(n) != (x.in_flight, x.total)
            }
        else:
            changed = loads
        self._reported = {n: (x.in_flight, x.total) for n, x in loads.items()}
        return PollReply(self.seq, now, tuple(reversed(reports)), changed)

    # -- control socket ------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients += 1
        try:
            while line := await reader.readline():
                try:
                    reply = await self._dispatch(decode(line))
                except (ConfigError, ValueError) as exc:
                    reply = {"error": str(exc)}
                writer.write(encode(reply))
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _dispatch(self, msg: dict[str, Any]) -> dict[str, Any]:
        op = msg.get("op")
        if op == "poll":
            since = int(msg.get("since", 0))
            wait = min(float(msg.get("wait", 0.0)), 5.0)
            if wait > 0 and self.seq <= since:  # a long poll: answer at the first news
                self._news.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._news.wait(), wait)
            return self.poll(since).to_json()
        if op == "apply":
            config = DataPlaneConfig.from_json(msg.get("config"))
            errors = await self.apply(config)
            return {"version": config.version, "listeners": errors}
        if op == "hello":
            return {
                "pid": os.getpid(),
                "startedAt": self.started_at,
                "version": self.config.version,
                "listeners": self.proxies.ports(),
                "proxy": self.proxy_kind,
            }
        if op == "shutdown":
            self.stopping.set()
            return {"ok": True}
        raise ValueError(f"unknown op {op!r}")

    async def stop(self, drain_sec: float = DRAIN_SEC) -> None:
        for prober in self.probers.values():
            prober.cancel()
        await self.proxies.stop(drain_sec)


async def serve_control(dp: DataPlane, path: str) -> asyncio.Server:
    return await asyncio.start_unix_server(dp.handle, path=path, limit=MAX_LINE)


__all__ = ["DataPlane", "Endpoint", "serve_control"]
