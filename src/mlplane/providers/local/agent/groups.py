"""A managed instance group in the agent: N replica processes of its template, autohealed.

One task per group reconciles the replicas with the target size whenever something happens (a
resize, a replica exiting, a replica failing its autohealing check after `initialDelaySec`, a
template change). A recreated replica keeps its name (GCP's RECREATE) and gets a new process,
port and metadata endpoint. A replica that keeps crashing at start slows the group down with an
exponential back-off instead of a busy loop. The data plane probes the replicas
(`probe_targets`) and the agent feeds its reports back (`observe`): a stalled agent delays
autohealing, it never fails a replica.

After each reconciliation the group reports its live size and its replicas' names, kept with
its record: an agent started after a killed one brings the group back at that size (within its
autoscaler's bounds) with replicas of the same names, as a MIG recreates its instances after a
host failure.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from mlplane.model.compute import HealthCheck, InstanceGroupManager, InstanceTemplate, link_key
from mlplane.providers.local.runtime import items_of
from mlplane.providers.local.wire import ReplicaView

from .health import Health, HealthTrack
from .host import Host, Running, halt, launch
from .store import Observed

log = logging.getLogger(__name__)
_QUICK_EXIT_SEC = 2.0
_ALPHABET = string.ascii_lowercase + string.digits

TemplateLookup = Callable[[str], InstanceTemplate]


@dataclass
class Replica:
    name: str
    template: str
    running: Running | None = None
    status: str = "STARTING"
    tracks: dict[str, HealthTrack] = field(default_factory=dict)  # by check, from the data plane
    healthy_once: bool = False
    recreate: bool = False
    restarts: int = 0
    error: str = ""

    def health(self, check: str | None) -> Health:
        track = self.tracks.get(check) if check else None
        return track.state if track else Health.UNKNOWN

    @property
    def owner(self) -> str:
        """What the data plane's reports name: this replica's current process."""
        return f"{self.name}:{self.running.pid}" if self.running else ""


class GroupRuntime:
    def __init__(
        self,
        host: Host,
        spec: InstanceGroupManager,
        templates: TemplateLookup,
        *,
        target_size: int | None = None,
        names: Sequence[str] = (),
    ) -> None:
        self.host = host
        self.spec = spec
        self.templates = templates
        self.target_size = spec.target_size if target_size is None else target_size
        self._names = list(names)  # replica names to use again (a group restored after a kill)
        self.autoscaled = False
        self.checks: dict[str, HealthCheck] = {}
        self.replicas: dict[str, Replica] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff = 0.0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def autohealing(self) -> tuple[str, int] | None:
        for policy in self.spec.auto_healing_policies:
            key = link_key(policy.health_check)
            if key is not None:
                return key.name, policy.initial_delay_sec
        return None

    # -- control -------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    def update(self, spec: InstanceGroupManager) -> None:
        self.spec = spec
        if not self.autoscaled:
            self.target_size = spec.target_size
        self._wake.set()

    def resize(self, size: int) -> None:
        self.target_size = size
        self._wake.set()

    def kill_replica(self, name: str) -> None:
        """`instances.delete` of a managed instance: the group recreates it."""
        self.replicas[name].recreate = True
        self._wake.set()

    def set_checks(self, checks: Mapping[str, HealthCheck]) -> None:
        """The health checks whose view of this group's replicas someone needs."""
        self.checks = dict(checks)
        for replica in self.replicas.values():
            for name in [n for n in replica.tracks if n not in self.checks]:
                del replica.tracks[name]

    def probe_targets(self) -> list[tuple[int, str, str]]:
        """(port, check, owner) for the data plane to probe: every check, every live replica."""
        return [
            (r.running.port, check, r.owner)
            for r in self.replicas.values()
            if r.running is not None and r.status == "RUNNING"
            for check in self.checks
        ]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*(self._remove(r, drain=False) for r in list(self.replicas.values())))

    # -- views ---------------------------------------------------------------------------------

    def endpoints(self, check: str | None) -> list[tuple[int, bool]]:
        """(port, healthy) of each running replica, by `check` (no check: running = healthy)."""
        out = []
        for r in self.replicas.values():
            if r.running is not None and r.status == "RUNNING":
                healthy = r.health(check) is Health.HEALTHY if check else True
                out.append((r.running.port, healthy))
        return out

    def views(self) -> list[ReplicaView]:
        heal = self.autohealing
        check = heal[0] if heal else next(iter(self.checks), None)
        sa = self._service_account()
        return [
            ReplicaView(
                group=self.name,
                name=r.name,
                pid=r.running.pid if r.running else None,
                port=r.running.port if r.running else None,
                metadata_port=r.running.metadata.port if r.running else None,
                status=r.status,
                health=str(r.health(check)),
                service_account=sa or "",
                restarts=r.restarts,
            )
            for r in sorted(self.replicas.values(), key=lambda r: r.name)
        ]

    def _service_account(self) -> str | None:
        accounts = self.templates(self.spec.instance_template).properties.service_accounts
        return accounts[0].email if accounts else None

    # -- reconciliation ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._reconcile()
            except Exception:
                log.exception("group %s: reconcile failed", self.name)
            if self._backoff:
                await asyncio.sleep(self._backoff)

    async def _reconcile(self) -> None:
        template = self.spec.instance_template
        doomed = [
            r
            for r in self.replicas.values()
            if r.recreate or r.running is None or r.running.proc.returncode is not None
            or r.template != template
        ]  # fmt: skip
        missing = max(self.target_size - len(self.replicas), 0)
        extra = max(len(self.replicas) - self.target_size, 0)
        victims = sorted(self.replicas.values(), key=self._keep_order)[:extra]
        doomed = [r for r in doomed if r not in victims]
        new = [Replica(self._new_name(), template) for _ in range(missing)]
        for r in new:
            self.replicas[r.name] = r
        await asyncio.gather(
            *(self._remove(r) for r in victims),
            *(self._recreate(r) for r in doomed),
            *(self._start(r) for r in new),
        )
        self.host.notify()
        live = Observed(target_size=self.target_size, replicas=tuple(sorted(self.replicas)))
        self.host.observe(self.spec.key, live)

    def _keep_order(self, r: Replica) -> tuple[int, float]:
        """Scale-in order: broken or unhealthy replicas first, then the newest."""
        heal = self.autohealing
        good = r.running is not None and (heal is None or r.health(heal[0]) is Health.HEALTHY)
        return (1 if good else 0, -(r.running.started_at if r.running else 0.0))

    def _new_name(self) -> str:
        while self._names:
            name = self._names.pop(0)
            if name not in self.host.names:
                self.host.names.add(name)
                return name
        while True:
            name = f"{self.spec.base_instance_name}-" + "".join(
                secrets.choice(_ALPHABET) for _ in range(4)
            )
            if name not in self.host.names:
                self.host.names.add(name)
                return name

    async def _start(self, r: Replica) -> None:
        r.template = self.spec.instance_template
        r.status, r.healthy_once, r.recreate, r.error = "STARTING", False, False, ""
        try:
            tmpl = self.templates(r.template)
            accounts = tmpl.properties.service_accounts
            items = items_of(tmpl.properties.metadata)
            sa = accounts[0].email if accounts else None
            r.running = await launch(self.host, r.name, self.spec.zone, items, sa)
        except (ValueError, OSError, KeyError) as exc:
            r.status, r.error, r.running = "FAILED", str(exc), None
            log.error("group %s: replica %s cannot start: %s", self.name, r.name, exc)
            self._slow_down()
            self._wake.set()
            return
        r.status = "RUNNING"
        log.info("group %s: replica %s pid %d port %d", self.name, r.name, r.running.pid,
                 r.running.port)  # fmt: skip
        self.host.notify()  # the data plane starts probing it now, not after the whole reconcile
        self.host.background(self._watch(r, r.running))

    async def _watch(self, r: Replica, running: Running) -> None:
        code = await running.proc.wait()
        if r.running is running and r.status == "RUNNING":
            lived = time.monotonic() - running.started_at
            log.warning("group %s: replica %s (pid %d) exited with %d after %.1fs",
                        self.name, r.name, running.pid, code, lived)  # fmt: skip
            if lived < _QUICK_EXIT_SEC:
                self._slow_down()
            self._wake.set()

    def _slow_down(self) -> None:
        limit = self.host.settings.restart_backoff_max_sec
        self._backoff = min(max(self._backoff * 2, 0.5), limit)

    async def _stop_process(self, r: Replica, drain: bool = True) -> None:
        """Out of the load balancer first (as a MIG's instance leaves its backend services
        before it is deleted), then stopped: requests in flight on it may finish for
        `lb_drain_sec`. A replica that is gone, or that no check passes, is stopped at once."""
        running = r.running
        if drain and running is not None and running.proc.returncode is None and self._serving(r):
            self.host.notify()  # its status is no longer RUNNING: the data plane drops it
            await asyncio.sleep(self.host.settings.lb_drain_sec)
        r.tracks = {}
        running, r.running = r.running, None
        if running is not None:
            await halt(self.host, running)

    def _serving(self, r: Replica) -> bool:
        """Could the load balancer be sending it requests?"""
        return not self.checks or any(t.state is Health.HEALTHY for t in r.tracks.values())

    async def _recreate(self, r: Replica) -> None:
        r.status = "RECREATING"
        await self._stop_process(r)
        r.restarts += 1
        await self._start(r)

    async def _remove(self, r: Replica, drain: bool = True) -> None:
        r.status = "STOPPING"
        await self._stop_process(r, drain)
        self.replicas.pop(r.name, None)
        self.host.names.discard(r.name)

    # -- health --------------------------------------------------------------------------------

    def observe(self, owner: str, check: str, track: HealthTrack) -> bool:
        """A report of the data plane's prober; returns whether the replica's state changed.
        A replica failing its autohealing check after `initialDelaySec` (or after it was once
        healthy) is recreated."""
        name = owner.rpartition(":")[0]
        r = self.replicas.get(name)
        if r is None or r.running is None or r.owner != owner or check not in self.checks:
            return False
        before = r.health(check)
        r.tracks[check] = track
        heal = self.autohealing
        if heal is not None and check == heal[0]:
            if track.state is Health.HEALTHY:
                r.healthy_once, self._backoff = True, 0.0
            elapsed = time.monotonic() - r.running.started_at
            if (
                track.state is Health.UNHEALTHY
                and not r.recreate
                and (r.healthy_once or elapsed >= heal[1])
            ):
                log.warning("group %s: replica %s failed health check %s: recreating",
                            self.name, r.name, check)  # fmt: skip
                r.recreate = True
                self._wake.set()
        return track.state is not before
