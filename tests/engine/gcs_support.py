"""Cloud Storage for the team-state tests: gcp-storage-emulator behind the loopback shim that
enforces generation preconditions as Cloud Storage does (tests/data/gcs_preconditions.py), and
"machines": a project directory each, with its own TeamState and an engine over one shared
FakeCloud. Also the child process the crash tests kill."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:  # the crash children import tests.data.gcs_preconditions
    sys.path.insert(0, str(REPO))

BUCKET = "acme-ml-mlplane-state"
PREFIX = "mlplane/"


@dataclass
class Gcs:
    url: str  # the shim's: what every client talks to
    server: Any
    rejected: list[str]

    def wipe(self) -> None:
        self.server.wipe(keep_buckets=True)
        self.rejected.clear()


@contextmanager
def gcs_with_preconditions() -> Iterator[Gcs]:
    from gcp_storage_emulator.server import create_server

    from tests.data.gcs_preconditions import precondition_shim

    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)
    server.start()
    try:
        with precondition_shim(server._api._httpd.server_port) as (url, rejected):
            yield Gcs(url, server, rejected)
    finally:
        server.stop()


@dataclass
class Recording:
    """An ObjectStore that records the calls it passes on: (method, object name)."""

    inner: Any
    calls: list[tuple[str, str]] = field(default_factory=list)

    def uri(self, name: str) -> str:
        return str(self.inner.uri(name))

    def stat(self, name: str) -> Any:
        self.calls.append(("stat", name))
        return self.inner.stat(name)

    def read(self, name: str, generation: int) -> bytes:
        self.calls.append(("read", name))
        return bytes(self.inner.read(name, generation))

    def write(self, name: str, data: bytes, **kw: Any) -> Any:
        self.calls.append(("write", name))
        return self.inner.write(name, data, **kw)

    def delete(self, name: str, **kw: Any) -> None:
        self.calls.append(("delete", name))
        self.inner.delete(name, **kw)

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] in ("write", "delete")]


def objects(url: str) -> Recording:
    from mlplane.apis.credentials import StaticToken
    from mlplane.providers.gcp.storage_objects import CloudStorageObjects

    return Recording(CloudStorageObjects(BUCKET, StaticToken("test-token", "a test"), base=url))


@dataclass
class Machine:
    """One machine of the team: its project directory, its team state, its engine."""

    name: str
    team: Any
    engine: Any
    store: Any  # the recording ObjectStore its team state talks to
    notes: list[str]

    def apply(self, desired: Any) -> Any:
        from fake_provider import principal

        report = self.engine.apply(desired, principal())
        report.raise_for_failures()
        return report

    def records(self) -> set[tuple[str, str, str]]:
        return {(k.kind, k.name, r.stack) for k, r in self.team.read_store().load().items()}


def machine(
    root: Path,
    name: str,
    url: str,
    cloud: Any,
    *,
    who: str = "serviceAccount:serving@test-proj.iam.gserviceaccount.com",
    lock_timeout: float = 0.0,
    clock: Any = None,
    on_event: Callable[[Any], None] | None = None,
    team_event: Callable[[str], None] | None = None,
) -> Machine:
    from fake_provider import PROJECT, FakeAuthorizer, FakeClock, fake_providers

    from mlplane.engine import Engine, EngineSettings
    from mlplane.engine.team_state import TeamState
    from mlplane.providers.base import PollPolicy

    notes: list[str] = []
    store = objects(url)
    team = TeamState(
        store,
        PREFIX,
        root / name / ".mlplane" / "team",
        who=lambda: who,
        operation=f"mlplane test on {name}",
        lock_timeout=lock_timeout,
        clock=clock or FakeClock(),
        notify=notes.append,
        on_event=team_event,
    )
    settings = EngineSettings(
        project=PROJECT, poll=PollPolicy(initial=0.01, factor=1.5, maximum=0.05)
    )
    engine = Engine(
        team.working_store(),
        fake_providers(cloud),
        FakeAuthorizer(),
        settings,
        clock=FakeClock(),
        on_event=on_event,
    )
    return Machine(name, team, engine, store, notes)


def child(root: str, name: str, url: str, scenario: str, die_at: str) -> None:
    """A machine that applies `scenario` and dies (os._exit(137), as kill -9 would leave it) at
    the team-state event `die_at`, or at the first RECORDED journal event ("recorded")."""
    from fake_provider import FakeCloud, bootstrap_state, deploy_state

    def team_event(event: str) -> None:
        if event == die_at:
            os._exit(137)

    def journal_event(event: Any) -> None:
        if die_at == "recorded" and event.kind == "recorded":
            os._exit(137)

    cloud = FakeCloud(Path(root) / "cloud.db", polls_to_done=1)
    m = machine(Path(root), name, url, cloud, team_event=team_event, on_event=journal_event)
    m.apply({"bootstrap": bootstrap_state, "deploy": deploy_state}[scenario]())
    os._exit(0)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    child(*sys.argv[1:6])
