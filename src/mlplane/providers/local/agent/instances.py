"""A standalone instance in the agent (notebook, training job): one process, its own port and
metadata endpoint. When the process exits the instance is TERMINATED (like a stopped VM) until
it is deleted; deleting it stops the process first.

An agent that was killed is, to its instances, a host that failed: its successor `restore`s
each as Compute Engine would after a host failure, by `scheduling.automaticRestart` (default
true): started again on the same port, or left TERMINATED with a line in its log saying why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mlplane.model.compute import Instance, InstanceTemplate, Scheduling, link_key
from mlplane.providers.local.runtime import items_of
from mlplane.providers.local.wire import ReplicaView

from .host import Host, Running, halt, launch
from .store import Observed

log = logging.getLogger(__name__)


class InstanceRuntime:
    def __init__(
        self, host: Host, spec: Instance, templates: Callable[[str], InstanceTemplate]
    ) -> None:
        self.host = host
        self.spec = spec
        self.templates = templates
        self.running: Running | None = None
        self.status = "PROVISIONING"
        self.exit_code: int | None = None

    @property
    def service_account(self) -> str | None:
        accounts = self.spec.service_accounts
        if not accounts and self.spec.source_instance_template:
            accounts = self.templates(
                self.spec.source_instance_template
            ).properties.service_accounts
        return accounts[0].email if accounts else None

    def items(self) -> dict[str, str]:
        items: dict[str, str] = {}
        if self.spec.source_instance_template and link_key(self.spec.source_instance_template):
            template = self.templates(self.spec.source_instance_template)
            items.update(items_of(template.properties.metadata))
        items.update(items_of(self.spec.metadata))
        return items

    async def start(self, port: int | None = None) -> None:
        """Start the process; ValueError/OSError (a bad command, ...) fail the create."""
        self.running = await launch(
            self.host, self.spec.name, self.spec.zone, self.items(), self.service_account, port
        )
        self.status = "RUNNING"
        self.host.names.add(self.spec.name)
        self._report()
        self.host.background(self._watch(self.running))

    async def restore(self, observed: Observed) -> None:
        """Come back after the agent (this VM's host) was killed: as it was if it had ended,
        else started again or TERMINATED, by its `scheduling.automaticRestart`."""
        self.host.names.add(self.spec.name)
        if observed.status == "TERMINATED":
            self.status, self.exit_code = "TERMINATED", observed.exit_code
            return
        if observed.status and not (self.spec.scheduling or Scheduling()).restarts:
            self.status, self.exit_code = "TERMINATED", None
            self._say(
                "the agent running this instance was killed (a host failure) and "
                "scheduling.automaticRestart is false: the instance stays TERMINATED"
            )
            self._report()
            return
        if observed.status:
            self._say("the agent running this instance was killed (a host failure): restarting")
        # never started (its create was accepted, then the agent died): the create completes
        await self.start(port=observed.port)

    def _say(self, line: str) -> None:
        log.info("instance %s: %s", self.spec.name, line)
        path = self.host.paths.logs / f"{self.spec.name}.log"
        try:
            with open(path, "a") as f:
                f.write(f"mlplane-agent: {line}\n")
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc)

    def _report(self) -> None:
        port = self.running.port if self.running else None
        observed = Observed(status=self.status, exit_code=self.exit_code, port=port)
        self.host.observe(self.spec.key, observed)

    async def _watch(self, running: Running) -> None:
        code = await running.proc.wait()
        if self.running is running and self.status == "RUNNING":
            log.info("instance %s (pid %d) exited with %d", self.spec.name, running.pid, code)
            self.status, self.exit_code, self.running = "TERMINATED", code, None
            self._report()
            await halt(self.host, running)  # frees its port and metadata endpoint
            self.host.notify()

    async def stop(self) -> None:
        self.status = "STOPPING"
        running, self.running = self.running, None
        if running is not None:
            self.exit_code = await halt(self.host, running)
        self.host.names.discard(self.spec.name)
        self.status = "TERMINATED"

    async def reset(self) -> None:
        """`instances.reset`: a hard restart; the process runs again from the same metadata."""
        running, self.running = self.running, None
        self.status = "STOPPING"
        if running is not None:
            await halt(self.host, running)
        self.exit_code = None
        self.host.names.discard(self.spec.name)
        await self.start()

    def detail(self) -> str:
        if self.status == "RUNNING" and self.running is not None:
            return f"RUNNING pid {self.running.pid} port {self.running.port}"
        if self.exit_code is not None:
            return f"{self.status} (exit {self.exit_code})"
        return self.status

    def view(self) -> ReplicaView:
        r = self.running
        return ReplicaView(
            group="",
            name=self.spec.name,
            pid=r.pid if r else None,
            port=r.port if r else None,
            metadata_port=r.metadata.port if r else None,
            status=self.status,
            health="-",
            service_account=self.service_account or "",
        )
