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
import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mlplane.errors import ConfigError
from mlplane.providers.local.lb import BackendService, Endpoint, LoadBalancer, validate

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

log = logging.getLogger(__name__)
DRAIN_SEC = 1.0
TargetKey = tuple[int, str, str]  # port, check, owner


class DataPlane:
    def __init__(self) -> None:
        self.config = DataPlaneConfig()
        self.balancers: dict[str, LoadBalancer] = {}
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
        self._closing: set[asyncio.Task[None]] = set()  # listeners draining

    # -- configuration -------------------------------------------------------------------------

    async def apply(self, config: DataPlaneConfig) -> dict[str, str]:
        """Swap in `config`; returns {listener: "" or why it cannot listen}. Raises ConfigError
        (and keeps the running configuration) when any part of it is invalid."""
        for li in config.listeners:
            validate(li.url_map, li.services)
        self._apply_targets(config)
        errors: dict[str, str] = {}
        wanted = {li.name: li for li in config.listeners}
        for name in [n for n in self.balancers if n not in wanted and n not in config.keep]:
            gone = self.balancers.pop(name)
            drain = config.drain_sec
            task = asyncio.get_running_loop().create_task(gone.stop(drain_timeout_sec=drain))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self._gated, self._services = {}, {}
        for li in config.listeners:
            services = tuple(self._gate(li.name, s) for s in li.services)
            balancer = self.balancers.get(li.name)
            if balancer is not None and balancer.port != li.port:
                self.balancers.pop(li.name)
                await balancer.stop(drain_timeout_sec=config.drain_sec)
                balancer = None
            if balancer is None:
                errors[li.name] = await self._open(li, services)
            else:
                balancer.apply(li.url_map, services)
                errors[li.name] = ""
        # Probes that finished while this apply awaited (a listener opening) were pushed into
        # the state being replaced: gate every service on the health known now.
        for listener, name in list(self._services):
            self._regate(listener, name)
        self.config = config
        log.info("config %d: %d listeners, %d probe targets", config.version,
                 len(config.listeners), len(config.targets))  # fmt: skip
        return errors

    async def _open(self, li: Listener, services: tuple[BackendService, ...]) -> str:
        balancer = LoadBalancer(li.url_map, services)
        try:
            await balancer.start(li.port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {li.port} on 127.0.0.1 is already in use"
            return f"cannot listen on 127.0.0.1:{li.port}: {exc}"
        self.balancers[li.name] = balancer
        log.info("listener %s on 127.0.0.1:%d", li.name, li.port)
        return ""

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
        balancer = self.balancers.get(listener)
        service = self._services.get((listener, name))
        if balancer is None or service is None:
            return
        endpoints = [
            replace(ep, healthy=self._healthy((ep.port, ep.health_check)))
            if ep.health_check is not None
            else ep
            for ep in service.endpoints
        ]
        try:
            balancer.set_endpoints(name, endpoints)
        except ConfigError as exc:
            log.error("health of %s not applied: %s", name, exc)

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
        for balancer in self.balancers.values():
            for name, (in_flight, total, busy) in balancer.service_loads(now).items():
                prev = loads.get(name)
                if prev is not None:
                    in_flight, total = in_flight + prev.in_flight, total + prev.total
                    busy += prev.busy
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
                "listeners": {name: b.port for name, b in self.balancers.items()},
            }
        if op == "shutdown":
            self.stopping.set()
            return {"ok": True}
        raise ValueError(f"unknown op {op!r}")

    async def stop(self, drain_sec: float = DRAIN_SEC) -> None:
        for prober in self.probers.values():
            prober.cancel()
        await asyncio.gather(
            *(b.stop(drain_timeout_sec=drain_sec) for b in self.balancers.values())
        )
        self.balancers.clear()


async def serve_control(dp: DataPlane, path: str) -> asyncio.Server:
    return await asyncio.start_unix_server(dp.handle, path=path, limit=MAX_LINE)


__all__ = ["DataPlane", "Endpoint", "serve_control"]
