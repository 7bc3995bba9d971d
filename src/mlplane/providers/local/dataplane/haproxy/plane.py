"""The listeners of the data plane served by a supervised haproxy instead of in this process.

`HaproxyProxies` is what `DataPlane` drives (the same calls as the Python load balancers):
- `apply` renders every listener into one haproxy.cfg. When only endpoints changed (replicas
  started, stopped, scaled), servers are added and removed through the runtime API: no reload,
  no connection closed; a removed server stays in maintenance until its requests are done.
  Otherwise (listeners, routing, services) the file is checked (`haproxy -c`) and haproxy
  reloaded: a new worker takes the listening sockets, the old one finishes its requests. A
  listener whose port another program holds is left out and named.
- `set_endpoints` is health: our own probes stay the source of truth, and each change becomes
  `set server B/S state ready|maint` on the runtime API, without a reload. The state is also
  written into each rendered configuration, and re-asserted once a new worker answers.
- `loads` are the autoscalers' counters, from `show stat` read every SAMPLE_SEC while there
  is traffic: in flight (scur), requests taken (req_tot, kept across reloads), and busy
  request-seconds (scur integrated over the readings).
A haproxy that exits on its own is restarted from the last configuration written.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from mlplane.errors import ConfigError
from mlplane.providers.local.lb import Endpoint
from mlplane.providers.local.paths import write_atomic

from ..protocol import Listener
from .config import Globals, Rendered, backend_name, render, shape
from .process import HaproxyProcess
from .runtime import RuntimeApiError, add_servers, backend_stats, del_servers, set_states

log = logging.getLogger(__name__)
SAMPLE_SEC = 0.1  # 10 readings per autoscaler tick (1 s)
IDLE_SAMPLE_SEC = 0.25
WATCH_SEC = 0.2
RETIRE_SEC = 1.0  # a removed server still serving requests: delete it when they are done
RESTART_MAX_SEC = 5.0
ServerKey = tuple[str, str]  # backend, server


@dataclass
class _Counter:
    service: str
    base: int = 0  # requests of workers replaced by reloads
    total: int = 0
    current: int = 0
    busy: float = 0.0
    at: float = 0.0


class HaproxyProxies:
    def __init__(self, proc: HaproxyProcess, threads: int = 1) -> None:
        self.proc = proc
        self.threads = threads
        self.listeners: dict[str, Listener] = {}
        self.rendered: Rendered | None = None
        self.desired: dict[ServerKey, bool] = {}
        self.applied: dict[ServerKey, bool] = {}
        self._in_file: dict[ServerKey, bool] = {}
        self._retired: list[ServerKey] = []  # removed, still serving requests: in maintenance
        self.counters: dict[str, _Counter] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- configuration -------------------------------------------------------------------------

    async def apply(
        self, listeners: Sequence[Listener], keep: Sequence[str], drain_sec: float
    ) -> dict[str, str]:
        async with self._lock:
            errors: dict[str, str] = {}
            wanted: dict[str, Listener] = {n: li for n, li in self.listeners.items() if n in keep}
            taken = {li.port for li in wanted.values()}
            bound = {li.port for li in self.listeners.values()}  # haproxy holds them
            for li in listeners:
                if li.port in taken:  # haproxy would share it (SO_REUSEPORT): refuse, as Python
                    errors[li.name] = f"port {li.port} on 127.0.0.1 is already in use"
                    continue
                if li.port not in bound:
                    li, errors[li.name] = _claim(li)
                    if errors[li.name]:
                        continue
                errors[li.name] = ""
                wanted[li.name] = li
                taken.add(li.port)
            services = [svc for x in wanted.values() for svc in x.services]
            hard_stop = max([drain_sec, *(svc.connection_draining_timeout_sec for svc in services)])
            rendered = render(
                list(wanted.values()), Globals(self.proc.socket, hard_stop, threads=self.threads)
            )
            if await self._endpoints_only(rendered, wanted):
                self._wake.set()
                return errors
            await self.proc.check(rendered.text)
            self.listeners, self.rendered, self._retired = wanted, rendered, []
            self._in_file = _states(rendered, wanted.values())
            self.desired = dict(self._in_file)  # the data plane re-gates after this apply
            if self.proc.running():
                await self.proc.reload()
            else:
                await self.proc.start()
                self._start_tasks()
            self.applied = dict(self._in_file)  # what the new worker read from the file
            self._fold_counters()
        self._wake.set()
        return errors

    async def _endpoints_only(self, rendered: Rendered, wanted: dict[str, Listener]) -> bool:
        """Only endpoints changed: add and remove servers through the runtime API (no reload,
        so no keep-alive connection is closed). False when a reload is needed."""
        old = self.rendered
        if old is None or not self.proc.running() or shape(old.text) != shape(rendered.text):
            return False
        retired = set(self._retired)
        adds = [(be, name, host, port) for (be, host, port), name in rendered.servers.items()
                if (be, host, port) not in old.servers and (be, name) not in retired]  # fmt: skip
        gone = [(be, name) for (be, host, port), name in old.servers.items()
                if (be, host, port) not in rendered.servers]  # fmt: skip
        back = {(be, name) for (be, _, _), name in rendered.servers.items()}
        try:
            await add_servers(self.proc.socket, adds)
            kept = await del_servers(self.proc.socket, gone + [r for r in retired if r not in back])
        except RuntimeApiError as exc:
            log.warning("endpoints not changed at run time (%s): reloading", exc)
            return False
        write_atomic(self.proc.cfg, rendered.text, mode=0o600)  # what a restart would read
        self.listeners, self.rendered, self._retired = wanted, rendered, kept
        self._in_file = _states(rendered, wanted.values())
        for key in gone:
            self.desired.pop(key, None)
            self.applied.pop(key, None)
        for be, name, _, _ in adds:
            self.applied[(be, name)] = False  # added in maintenance
            self.desired[(be, name)] = self._in_file.get((be, name), False)
        log.info("endpoints changed at run time: %d added, %d removed", len(adds), len(gone))
        return True

    def set_endpoints(self, listener: str, service: str, endpoints: Sequence[Endpoint]) -> None:
        rendered = self.rendered
        if rendered is None or listener not in self.listeners:
            return
        be = backend_name(listener, service)
        for ep in endpoints:
            server = rendered.servers.get((be, ep.host, ep.port))
            if server is not None:
                self.desired[(be, server)] = ep.healthy
        self._wake.set()

    def ports(self) -> dict[str, int]:
        return {n: li.port for n, li in self.listeners.items()}

    async def stop(self, drain_sec: float) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.proc.stop(drain_sec)
        self.listeners = {}

    # -- background: health pushes, load samples, the process ----------------------------------

    def _start_tasks(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._push_states()),
                loop.create_task(self._sample()),
                loop.create_task(self._watch()),
            ]

    async def _push_states(self) -> None:
        """Health changes to the runtime API; removed servers deleted once their requests end."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RETIRE_SEC if self._retired else None)
            self._wake.clear()
            async with self._lock:
                if self._retired and self.proc.running():
                    with contextlib.suppress(RuntimeApiError):
                        self._retired = await del_servers(self.proc.socket, self._retired)
                diff = {k: v for k, v in self.desired.items() if self.applied.get(k) != v}
                if not diff:
                    continue
                try:
                    await set_states(self.proc.socket, diff)
                    self.applied.update(diff)
                except RuntimeApiError as exc:
                    log.warning("server states not applied yet: %s", exc)
                    await asyncio.sleep(0.1)
                    self._wake.set()

    async def _sample(self) -> None:
        while True:
            busy = await self.sample()
            await asyncio.sleep(SAMPLE_SEC if busy else IDLE_SAMPLE_SEC)

    async def sample(self) -> bool:
        """Read the backends' counters; True when any request is in flight or was taken."""
        try:
            stats = await backend_stats(self.proc.socket)
        except RuntimeApiError:
            return False
        rendered = self.rendered
        if rendered is None:
            return False
        now = time.monotonic()
        moving = False
        for st in stats:
            owner = rendered.backends.get(st.name)
            if owner is None:
                continue
            c = self.counters.get(st.name)
            if c is None or c.service != owner[1]:
                c = self.counters[st.name] = _Counter(owner[1], at=now)
            if c.at:
                c.busy += (c.current + st.current) / 2 * (now - c.at)
            moving = moving or st.current > 0 or st.total != c.total
            c.total, c.current, c.at = max(st.total, 0), st.current, now
        return moving

    def _fold_counters(self) -> None:
        """A reload starts a worker with fresh counters: keep the totals monotonic."""
        rendered = self.rendered
        for name in list(self.counters):
            if rendered is None or name not in rendered.backends:
                del self.counters[name]
                continue
            c = self.counters[name]
            c.base, c.total, c.current = c.base + c.total, 0, 0

    def loads(self, now: float) -> dict[str, tuple[int, int, float]]:
        out: dict[str, tuple[int, int, float]] = {}
        for c in self.counters.values():
            busy = c.busy + c.current * max(now - c.at, 0.0)
            prev = out.get(c.service, (0, 0, 0.0))
            out[c.service] = (prev[0] + c.current, prev[1] + c.base + c.total, prev[2] + busy)
        return out

    async def _watch(self) -> None:
        backoff = 0.5
        while True:
            await asyncio.sleep(WATCH_SEC)
            if self.proc.running() or self.rendered is None:
                continue
            log.error("haproxy exited (see %s): restarting in %.1f s", self.proc.log, backoff)
            await asyncio.sleep(backoff)
            async with self._lock:
                try:
                    await self.proc.start()
                    self.applied = dict(self._in_file)
                    self._fold_counters()
                    backoff = 0.5
                except ConfigError as exc:
                    log.error("haproxy did not restart: %s", exc)
                    backoff = min(backoff * 2, RESTART_MAX_SEC)
            self._wake.set()


def _states(rendered: Rendered, listeners: Iterable[Listener]) -> dict[ServerKey, bool]:
    """Each server's state as the configuration text says it (healthy or maint)."""
    out: dict[ServerKey, bool] = {}
    for li in listeners:
        for svc in li.services:
            be = backend_name(li.name, svc.name)
            for ep in svc.endpoints:
                server = rendered.servers.get((be, ep.host, ep.port))
                if server is not None:
                    out[(be, server)] = ep.healthy
    return out


def _claim(li: Listener) -> tuple[Listener, str]:
    """A port haproxy does not hold yet: free (or 0, then pick one)? (listener, error)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", li.port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return li, f"port {li.port} on 127.0.0.1 is already in use"
            return li, f"cannot listen on 127.0.0.1:{li.port}: {exc}"
        port = int(s.getsockname()[1])
    return (replace(li, port=port) if li.port == 0 else li), ""
