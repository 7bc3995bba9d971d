"""Cloud Run services in the agent: revisions that run, traffic that routes (decision 1704).

A service is its last accepted body (Cloud Run Admin v2's `Service`: template, traffic, labels)
plus what the agent made of it: revisions, each created when the template changes and never
changed after (`SERVICE-00002-abc`), and a front end of its own on the load balancer's data
plane: a listener on a port of its own (the service's URL, `http://127.0.0.1:PORT`) whose URL
map splits requests between revisions by the traffic targets (LATEST = the latest ready one).

A revision runs one instance (Cloud Run scales; locally one is kept while the revision has
traffic, none after, as if scaled to zero): a container of its image when a Docker engine is
reachable, pulled as Cloud Run's service agent; without one, the image's command as a process
when the image is one of mlplane's own (`mlplane`, `serving`, ...), else it cannot run and the
revision is not ready, saying why. Its identity is the template's service account (metadata
server), its environment `PORT`, `K_SERVICE`, `K_REVISION`, `K_CONFIGURATION` and the
container's `env`. It is ready when its port accepts a connection (Cloud Run's default TCP
startup probe); a revision that is not ready within the timeout, or exits, fails, and the
service keeps serving the revisions it had.

Services outlive the agent (decision 1708): each is written through to its file
(`cloudrun_files.py`); a restarted agent reads them back (`load`), its front ends listen on
their ports again (`reopen`) and their serving revisions start again (`resume`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import secrets
import string
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlplane.model.images import BY_NAME, ImageRef
from mlplane.model.workload import ARGS_KEY, IMAGE_KEY
from mlplane.providers.local import lb
from mlplane.providers.local.dataplane.client import DataPlaneError
from mlplane.providers.local.dataplane.protocol import Listener

from .host import Host, Running, halt, launch

if TYPE_CHECKING:
    from .cloudrun_files import RunFiles

log = logging.getLogger(__name__)
READY_TIMEOUT_SEC = 180.0
LATEST = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
PREFIX = "_run-"  # listener and backend service names no Google resource can take
STATES = ("PENDING", "READY", "FAILED", "RETIRED")


@dataclass
class RevisionRecord:
    name: str
    service: str
    generation: int  # the service's generation that created it
    template: dict[str, Any]
    created: float = field(default_factory=time.time)
    state: str = "PENDING"  # PENDING, READY, FAILED, RETIRED (no traffic: scaled to zero)
    message: str = ""
    running: Running | None = None
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def image(self) -> str:
        containers = self.template.get("containers") or [{}]
        return str(containers[0].get("image", ""))


@dataclass
class ServiceRecord:
    name: str
    location: str
    body: dict[str, Any]  # template, traffic, labels, annotations, description, ingress, ...
    creator: str
    port: int
    generation: int = 1
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    last_modifier: str = ""
    revisions: dict[str, RevisionRecord] = field(default_factory=dict)  # in creation order
    reconciling: bool = False
    failure: str = ""  # why the last change did not become ready

    @property
    def latest_created(self) -> RevisionRecord | None:
        return next(reversed(self.revisions.values()), None)

    @property
    def latest_ready(self) -> RevisionRecord | None:
        ready = [r for r in self.revisions.values() if r.state in ("READY", "RETIRED")]
        serving = [r for r in ready if r.state == "READY"]
        found = serving or ready
        return found[-1] if found else None

    def traffic(self) -> list[tuple[str, int, str, str]]:
        """(revision, percent, type, tag) of each target, LATEST resolved."""
        targets = self.body.get("traffic") or [{"type": LATEST, "percent": 100}]
        out = []
        for t in targets:
            kind = t.get("type") or (REVISION if t.get("revision") else LATEST)
            rev = t.get("revision", "") if kind == REVISION else ""
            if kind == LATEST:
                latest = self.latest_ready
                rev = latest.name if latest is not None else ""
            out.append((rev, int(t.get("percent", 0) or 0), kind, str(t.get("tag", ""))))
        return out


def revision_name(service: str, generation: int) -> str:
    suffix = "".join(secrets.choice(string.ascii_lowercase) for _ in range(3))
    return f"{service}-{generation:05d}-{suffix}"


def own_command(image: str) -> tuple[str, ...]:
    """The command of one of mlplane's own images (runnable here without an engine)."""
    with contextlib.suppress(ValueError):
        found = BY_NAME.get(ImageRef.parse(image).name)
        if found is not None and found.python:
            return found.command
    return ()


class CloudRun:
    def __init__(self, host: Host, project: str, zone: str, files: RunFiles | None = None) -> None:
        self.host = host
        self.project = project
        self.zone = zone
        self.services: dict[str, ServiceRecord] = {}
        self.files = files  # where each service is written through (decision 1708)
        # Set by the wiring: ask the data plane to take the configuration (sync), or send it
        # now and learn which listeners failed (push).
        self.sync: Callable[[], None] = lambda: None
        self.push: Callable[[], Awaitable[dict[str, str]]] = _no_push
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    # -- on disk (decision 1708) -----------------------------------------------------------------

    def save(self, svc: ServiceRecord) -> None:
        """Write `svc` through to its file (after a change the agent accepted, or made); a
        service no longer held (deleted) is not written back. OSError when it cannot be."""
        if self.files is not None and self.services.get(svc.name) is svc:
            self.files.save(svc)

    def saved(self, svc: ServiceRecord) -> None:
        """`save`, from work no caller waits on: a failure is logged (the next change retries)."""
        try:
            self.save(svc)
        except OSError as exc:
            log.warning("cannot record Cloud Run service %s: %s", svc.name, exc)

    def load(self) -> None:
        """The services a previous agent recorded (ConfigError naming a damaged file), their
        front ends' ports held for them; nothing runs until `reopen` and `resume`."""
        if self.files is None:
            return
        for svc in self.files.load():
            self.services[svc.name] = svc
            self.host.ports.in_use.add(svc.port)
        if self.services:
            log.info("restoring %d Cloud Run services", len(self.services))

    async def reopen(self) -> None:
        """The restored services' front ends listen again on their ports (a data plane a killed
        agent left keeps them open); one whose port something else took moves to another,
        which the log says (its `uri` changes)."""
        if not self.services:
            return
        try:
            errors = await self.push()
        except DataPlaneError as exc:  # the revisions' start pushes again (`settle`)
            log.warning("Cloud Run front ends: %s", exc)
            return
        moved = False
        for svc in self.services.values():
            error = errors.get(f"{PREFIX}{svc.name}", "")
            if not error:
                continue
            old, svc.port = svc.port, self.host.ports.allocate()
            self.host.ports.release(old)
            log.warning(
                "Cloud Run service %s: its front end cannot listen on port %d again (%s): it "
                "listens on port %d (its uri is now http://127.0.0.1:%d)",
                svc.name, old, error, svc.port, svc.port,
            )  # fmt: skip
            self.saved(svc)
            moved = True
        if moved:
            for name, error in (await self.push()).items():
                if name.startswith(PREFIX) and error:
                    log.warning("Cloud Run front end %s cannot listen: %s", name, error)

    async def resume(self, svc: ServiceRecord) -> None:
        """A restored service runs again: the revisions its traffic goes to start (new
        instances of the same images); a change whose operation the killed agent had accepted
        completes (its new revision starts, traffic moves)."""
        async with self.lock(svc.name):
            if self.services.get(svc.name) is not svc:
                return
            interrupted = svc.reconciling
            if interrupted:
                svc.failure = ""  # its operation runs again, as the rollout would
            try:
                template = svc.body.get("template") or {}
                latest = svc.latest_created
                if interrupted and (latest is None or template_changed(latest.template, template)):
                    name = template.get("revision") or revision_name(svc.name, svc.generation)
                    if name not in svc.revisions:  # accepted, its revision not made yet
                        copied = copy.deepcopy(template)
                        svc.revisions[name] = RevisionRecord(name, svc.name, svc.generation, copied)
                        self.saved(svc)
                for rev in svc.revisions.values():
                    if rev.state == "PENDING":
                        await self.start_revision(svc, rev)
                        if rev.state == "FAILED":
                            svc.failure = rev.message
                for _ in range(len(svc.revisions) + 1):  # a revision that fails moves LATEST
                    before = svc.traffic()
                    await self.settle(svc)
                    if svc.traffic() == before:
                        break
            except ValueError as exc:
                svc.failure = str(exc)
                log.warning("Cloud Run service %s: %s", svc.name, exc)
            finally:
                if interrupted:
                    svc.reconciling, svc.updated = False, time.time()
                self.saved(svc)

    # -- the data plane ------------------------------------------------------------------------

    def listeners(self) -> list[Listener]:
        out = []
        for svc in self.services.values():
            services, weighted = [], []
            for rev, percent, _, _ in svc.traffic():
                record = svc.revisions.get(rev)
                if record is None or record.running is None or percent <= 0:
                    continue
                bes = f"{PREFIX}{svc.name}-{rev}"
                endpoint = lb.Endpoint("127.0.0.1", record.running.port)
                services.append(
                    lb.BackendService(
                        bes, (endpoint,), timeout_sec=300.0, connection_draining_timeout_sec=1.0
                    )
                )
                weighted.append(lb.WeightedBackendService(bes, percent * 10))
            empty = f"{PREFIX}{svc.name}-none"
            if not weighted:  # nothing ready: answer 503 rather than refuse connections
                services.append(lb.BackendService(empty))
                url_map = lb.UrlMap(default_service=empty, name=f"{PREFIX}{svc.name}")
            else:
                rule = lb.RouteRule(
                    1, (lb.RouteMatch(prefix_match="/"),), weighted_backend_services=tuple(weighted)
                )
                matcher = lb.PathMatcher(
                    "traffic", default_service=weighted[0].service, route_rules=(rule,)
                )
                url_map = lb.UrlMap(
                    default_service=weighted[0].service,
                    host_rules=(lb.HostRule(("*",), "traffic"),),
                    path_matchers=(matcher,),
                    name=f"{PREFIX}{svc.name}",
                )
            out.append(Listener(f"{PREFIX}{svc.name}", svc.port, url_map, tuple(services)))
        return out

    # -- revisions -----------------------------------------------------------------------------

    def _items(self, svc: ServiceRecord, rev: RevisionRecord) -> dict[str, str]:
        container = (rev.template.get("containers") or [{}])[0]
        items = {IMAGE_KEY: rev.image}
        # As Cloud Run: `command` replaces the image's entrypoint, `args` its CMD (mlplane's
        # images have no entrypoint); with neither, the image's own command runs.
        command = [*container.get("command", ()), *container.get("args", ())]
        if not command:
            command = list(own_command(rev.image))
        if command:
            items[ARGS_KEY] = json.dumps(command)
        return items

    def _env(self, svc: ServiceRecord, rev: RevisionRecord) -> dict[str, str]:
        container = (rev.template.get("containers") or [{}])[0]
        env = {
            str(e["name"]): str(e.get("value", "")) for e in container.get("env", ()) if "name" in e
        }
        env.update({"K_SERVICE": svc.name, "K_REVISION": rev.name, "K_CONFIGURATION": svc.name})
        return env

    async def start_revision(self, svc: ServiceRecord, rev: RevisionRecord) -> None:
        """Run the revision's instance and wait until it is ready (or failed, with why)."""
        instance = f"run-{rev.name}"
        account = rev.template.get("serviceAccount") or None
        containers = self.host.containers
        if not own_command(rev.image) and (containers is None or await containers.engine() is None):
            why = containers.why_not() if containers is not None else "no engine support"
            rev.state = "FAILED"
            rev.message = (
                f"Revision '{rev.name}' cannot run: its image {rev.image} needs a "
                f"Docker engine ({why}); only mlplane's own images run without one"
            )
            return
        try:
            rev.running = await launch(
                self.host,
                instance,
                self.zone,
                self._items(svc, rev),
                account,
                extra_env=self._env(svc, rev),
                as_service_agent=True,
            )
        except (ValueError, OSError) as exc:
            rev.state, rev.message = "FAILED", f"Revision '{rev.name}' cannot run: {exc}"
            return
        running = rev.running
        deadline = time.monotonic() + READY_TIMEOUT_SEC
        while time.monotonic() < deadline:
            if running.proc.returncode is not None:
                break
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", running.port)
                writer.close()
                rev.state, rev.message = "READY", ""
                self.host.background(self._watch(svc, rev, running))
                return
            await asyncio.sleep(0.1)
        code = running.proc.returncode
        await self.stop_revision(rev)
        tail = _tail(self.host.paths.logs / f"{instance}.log")
        rev.state = "FAILED"
        rev.message = (
            f"Revision '{rev.name}' is not ready and cannot serve traffic: "
            + (
                f"the container exited with {code}"
                if code is not None
                else f"it did not listen on PORT within {READY_TIMEOUT_SEC:.0f} s"
            )
            + (f". Logs: {tail}" if tail else "")
        )

    async def _watch(self, svc: ServiceRecord, rev: RevisionRecord, running: Running) -> None:
        code = await running.proc.wait()
        if rev.running is running:
            log.info("revision %s exited with %d", rev.name, code)
            await self.stop_revision(rev)
            rev.state, rev.message = "FAILED", f"the container exited with {code}"
            self.saved(svc)
            self.sync()

    async def stop_revision(self, rev: RevisionRecord) -> None:
        running, rev.running = rev.running, None
        if running is not None:
            await halt(self.host, running)

    async def settle(self, svc: ServiceRecord) -> None:
        """Start the revisions traffic goes to, route it, then stop the others (scaled to
        zero). ValueError when the service's front end cannot listen."""
        wanted = {rev for rev, percent, _, _ in svc.traffic() if percent > 0}
        for rev in svc.revisions.values():  # READY without an instance: restored (`resume`)
            if rev.name in wanted and rev.running is None and rev.state in ("READY", "RETIRED"):
                await self.start_revision(svc, rev)
        errors = await self.push()
        error = errors.get(f"{PREFIX}{svc.name}", "")
        if error:
            raise ValueError(f"the front end of service '{svc.name}' cannot listen: {error}")
        for rev in svc.revisions.values():
            if rev.name not in wanted and rev.running is not None:
                await self.stop_revision(rev)
                rev.state = "RETIRED"

    async def remove(self, svc: ServiceRecord) -> None:
        if self.services.get(svc.name) is svc:
            self.services.pop(svc.name)
            if self.files is not None:
                self.files.delete(svc.name)
        await self.push()  # no more traffic to it, then its revisions stop
        for rev in svc.revisions.values():
            await self.stop_revision(rev)
        self.host.ports.release(svc.port)

    async def shutdown(self) -> None:
        for svc in list(self.services.values()):
            for rev in svc.revisions.values():
                await self.stop_revision(rev)


async def _no_push() -> dict[str, str]:
    return {}


def _tail(path: Any, lines: int = 5) -> str:
    try:
        text: str = path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])[-600:]


def template_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """A new revision is made when the template changes (its `revision` name aside)."""

    def strip(t: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in t.items() if k != "revision"}

    return strip(old) != strip(new)
