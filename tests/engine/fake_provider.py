"""A GCP-shaped fake cloud for engine tests, persisted in SQLite so it outlives a killed process.

- Mutations return PENDING operations that complete after `polls_to_done` polls of the operation
  (or `background_ticks` calls to the cloud by anyone, as time passing would), or, in delay mode,
  `op_delay` wall-clock seconds after they were issued.
- Creates and deletes take effect when their operation completes; updates at once.
- `requestId`s are remembered: a repeated request returns the original operation.
- Creating a resource whose references do not exist fails (ordering bugs fail loudly); deleting
  a referenced resource fails with ResourceInUse; updating a fingerprinted kind with a stale
  fingerprint fails with FingerprintConflict (412).
- Faults can be injected: 412, resourceInUse, 503 (sync or as an operation error), permanent.
- Every applied effect is logged, so tests can prove nothing was created twice or leaked.
- All of it lives in the SQLite file, so a client killed mid-apply finds the cloud as a real one
  would be: requests it sent were taken, and `elapse()` lets the operations it left in flight
  finish while nobody watches (time passing at the cloud between the crash and the re-run).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplane.iam.decision import Decision
from mlplane.model.compute import (
    SPEC_TYPES,
    ResourceKey,
    ResourceSpec,
    Verb,
    spec_from_data,
    spec_to_data,
)
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef
from mlplane.providers.base import (
    Observed,
    Operation,
    OperationError,
    OperationStatus,
    ResourceProvider,
    SupportsOperationWait,
)
from mlplane.providers.errors import (
    AlreadyExists,
    FingerprintConflict,
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
    ResourceInUse,
)
from mlplane.providers.registry import ProviderRegistry, ProviderSet

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (kind TEXT, name TEXT, spec TEXT, fingerprint TEXT,
    PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS operations (name TEXT PRIMARY KEY, kind TEXT, target TEXT, verb TEXT,
    request_id TEXT, status TEXT, error TEXT, spec TEXT, polls INTEGER, ready_tick INTEGER,
    ready_at REAL, started REAL, finished REAL);
CREATE TABLE IF NOT EXISTS requests (request_id TEXT PRIMARY KEY, op TEXT);
CREATE TABLE IF NOT EXISTS effects (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, name TEXT,
    verb TEXT, op TEXT);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER);
INSERT OR IGNORE INTO meta VALUES ('tick', 0), ('ops', 0), ('conflicts', 0);
"""


@dataclass
class Fault:
    """Inject `error` into the next `times` matching calls.

    error: "412" | "in_use" | "503" | "permanent" (raised by the call), or "op_503" |
    "op_permanent" | "op_exists" (the operation finishes DONE with that error, no effect).
    """

    verb: str
    error: str
    kind: str | None = None
    name: str | None = None
    times: int = 1

    def matches(self, verb: str, key: ResourceKey) -> bool:
        return (
            self.times > 0
            and self.verb == verb
            and self.kind in (None, key.kind)
            and self.name in (None, key.name)
        )


@dataclass
class FakeCloud:
    path: Path
    polls_to_done: int = 2
    background_ticks: int = 200
    op_delay: float | None = None  # delay mode (wall clock), for benchmarks
    read_delay: dict[str, float] = field(default_factory=dict)  # widen races on get, by kind
    faults: list[Fault] = field(default_factory=list)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (verb, kind, name)
    before_update: Callable[[FakeCloud, ResourceKey], None] | None = None

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._conn().executescript(SCHEMA)

    # -- plumbing ------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")  # a test fake: durability across kill -9
            conn.execute("PRAGMA busy_timeout=30000")  # needs no fsync, only the OS cache
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _tx(self, verb: str, key: ResourceKey) -> sqlite3.Connection:
        with self._lock:
            self.calls.append((verb, key.kind, key.name))
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE meta SET v = v + 1 WHERE k = 'tick'")
        self._settle(conn)
        return conn

    def _fault(self, verb: str, key: ResourceKey, *, op_level: bool = False) -> str | None:
        with self._lock:
            for f in self.faults:
                if f.matches(verb, key) and f.error.startswith("op_") == op_level:
                    f.times -= 1
                    return f.error
        return None

    def _meta(self, conn: sqlite3.Connection, k: str) -> int:
        return int(conn.execute("SELECT v FROM meta WHERE k = ?", (k,)).fetchone()[0])

    def _settle(self, conn: sqlite3.Connection) -> None:
        """Complete every operation whose time has come, applying its effect."""
        tick, now = self._meta(conn, "tick"), time.time()
        rows = conn.execute(
            "SELECT name, kind, target, verb, spec, polls, ready_tick, ready_at, error FROM "
            "operations WHERE status != 'DONE'"
        ).fetchall()
        for name, kind, target, verb, spec, polls, ready_tick, ready_at, error in rows:
            if self.op_delay is not None:
                ready = now >= ready_at
            else:
                ready = polls >= self.polls_to_done or tick >= ready_tick
            if ready:
                self._complete(conn, name, kind, target, verb, spec, error)

    def _complete(
        self,
        conn: sqlite3.Connection,
        name: str,
        kind: str,
        target: str,
        verb: str,
        spec: str | None,
        error: str | None,
    ) -> None:
        if error is None and verb == "create":
            if self._exists(conn, ResourceKey(kind, target)):
                error = json.dumps(["ALREADY_EXISTS", f"{kind}/{target} exists", 409])
            else:
                conn.execute(
                    "INSERT INTO resources VALUES (?,?,?,?)",
                    (kind, target, spec, _fp(spec or "", 0)),
                )
        elif error is None and verb == "delete":
            conn.execute("DELETE FROM resources WHERE kind = ? AND name = ?", (kind, target))
        if error is None and verb != "update":  # updates are logged when they are applied
            conn.execute(
                "INSERT INTO effects (kind, name, verb, op) VALUES (?,?,?,?)",
                (kind, target, verb, name),
            )
        conn.execute(
            "UPDATE operations SET status = 'DONE', error = ?, finished = ? WHERE name = ?",
            (error, time.time(), name),
        )

    def _exists(self, conn: sqlite3.Connection, key: ResourceKey) -> bool:
        row = conn.execute(
            "SELECT 1 FROM resources WHERE kind = ? AND name = ?", (key.kind, key.name)
        ).fetchone()
        return row is not None

    def _new_op(
        self, conn: sqlite3.Connection, key: ResourceKey, verb: str, rid: str, spec: str | None
    ) -> Operation:
        conn.execute("UPDATE meta SET v = v + 1 WHERE k = 'ops'")
        name = f"operation-{self._meta(conn, 'ops')}"
        error = None
        injected = self._fault(verb, key, op_level=True)
        if injected == "op_503":
            error = json.dumps(["RESOURCE_NOT_READY", "backend busy", 503])
        elif injected == "op_permanent":
            error = json.dumps(["INVALID_FIELD_VALUE", "injected permanent failure", 400])
        elif injected == "op_exists":
            error = json.dumps(["ALREADY_EXISTS", "injected already exists", 409])
        now = time.time()
        conn.execute(
            "INSERT INTO operations VALUES (?,?,?,?,?,'PENDING',?,?,0,?,?,?,NULL)",
            (
                name, key.kind, key.name, verb, rid, error, spec,
                self._meta(conn, "tick") + self.background_ticks,
                now + (self.op_delay or 0.0), now,
            ),
        )  # fmt: skip
        conn.execute("INSERT INTO requests VALUES (?, ?)", (rid, name))
        return self._op(conn, name)

    def _op(self, conn: sqlite3.Connection, name: str) -> Operation:
        kind, target, verb, status, error = conn.execute(
            "SELECT kind, target, verb, status, error FROM operations WHERE name = ?", (name,)
        ).fetchone()
        err = json.loads(error) if error and status == "DONE" else None
        scope = (
            "zones/z" if kind in ("instanceGroupManager", "autoscaler", "instance") else "global"
        )
        return Operation(
            name=name,
            target=ResourceKey(kind, target),
            verb=Verb(verb),
            status=OperationStatus(status),
            error=OperationError(err[0], err[1], err[2]) if err else None,
            scope=scope,
        )

    def _seen(self, conn: sqlite3.Connection, rid: str) -> Operation | None:
        row = conn.execute("SELECT op FROM requests WHERE request_id = ?", (rid,)).fetchone()
        return self._op(conn, row[0]) if row else None

    def _raise_sync(self, injected: str | None, key: ResourceKey) -> None:
        if injected == "412":
            raise FingerprintConflict(f"{key}: injected 412", key)
        if injected == "in_use":
            raise ResourceInUse(f"{key}: injected in use", key, used_by="urlMap/someone-else")
        if injected == "503":
            raise ProviderUnavailable(f"{key}: injected 503", key, delay=0.5)
        if injected == "permanent":
            raise InvalidRequest(f"{key}: injected permanent error", key)

    def _check_refs(self, conn: sqlite3.Connection, spec: ResourceSpec) -> None:
        for ref in spec.references():
            if not self._exists(conn, ref):
                raise InvalidRequest(f"{spec.key}: referenced {ref} was not found", spec.key)

    # -- the API the per-kind providers call --------------------------------------------------

    def create(self, spec: ResourceSpec, request_id: str) -> Operation:
        conn = self._tx("create", spec.key)
        try:
            if (op := self._seen(conn, request_id)) is not None:
                conn.execute("COMMIT")
                return op
            key = spec.key
            self._raise_sync(self._fault("create", key), key)
            pending = conn.execute(
                "SELECT 1 FROM operations WHERE kind = ? AND target = ? AND verb = 'create' "
                "AND status != 'DONE'",
                (key.kind, key.name),
            ).fetchone()
            if self._exists(conn, key) or pending:
                raise AlreadyExists(f"{key} already exists", key)
            self._check_refs(conn, spec)
            op = self._new_op(conn, key, "create", request_id, _dump(spec))
            conn.execute("COMMIT")
            return op
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def get(self, key: ResourceKey) -> Observed[Any]:
        conn = self._tx("get", key)
        try:
            row = conn.execute(
                "SELECT spec, fingerprint FROM resources WHERE kind = ? AND name = ?",
                (key.kind, key.name),
            ).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if row is None:
            raise NotFound(f"{key} was not found", key)
        if key.kind in self.read_delay:
            time.sleep(self.read_delay[key.kind])
        return Observed(spec_from_data(key.kind, json.loads(row[0])), row[1])

    def update(self, spec: ResourceSpec, fingerprint: str | None, request_id: str) -> Operation:
        key = spec.key
        if self.before_update is not None:
            self.before_update(self, key)
        conn = self._tx("update", key)
        try:
            if (op := self._seen(conn, request_id)) is not None:
                conn.execute("COMMIT")
                return op
            self._raise_sync(self._fault("update", key), key)
            row = conn.execute(
                "SELECT fingerprint FROM resources WHERE kind = ? AND name = ?",
                (key.kind, key.name),
            ).fetchone()
            if row is None:
                raise NotFound(f"{key} was not found", key)
            if type(spec).FINGERPRINTED and fingerprint != row[0]:
                conn.execute("UPDATE meta SET v = v + 1 WHERE k = 'conflicts'")
                conn.execute("COMMIT")
                raise FingerprintConflict(f"{key}: conditionNotMet (stale fingerprint)", key)
            self._check_refs(conn, spec)
            data = _dump(spec)
            conn.execute(
                "UPDATE resources SET spec = ?, fingerprint = ? WHERE kind = ? AND name = ?",
                (data, _fp(data, self._meta(conn, "tick")), key.kind, key.name),
            )
            op = self._new_op(conn, key, "update", request_id, data)
            conn.execute(
                "INSERT INTO effects (kind, name, verb, op) VALUES (?,?,?,?)",
                (key.kind, key.name, "update", op.name),
            )
            conn.execute("COMMIT")
            return op
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def delete(self, key: ResourceKey, request_id: str) -> Operation:
        conn = self._tx("delete", key)
        try:
            if (op := self._seen(conn, request_id)) is not None:
                conn.execute("COMMIT")
                return op
            self._raise_sync(self._fault("delete", key), key)
            if not self._exists(conn, key):
                raise NotFound(f"{key} was not found", key)
            for kind, name, data in conn.execute("SELECT kind, name, spec FROM resources"):
                if key in spec_from_data(kind, json.loads(data)).references():
                    raise ResourceInUse(
                        f"The {key.kind} resource '{key.name}' is already being used by "
                        f"'{kind}/{name}'",
                        key,
                        used_by=f"{kind}/{name}",
                    )
            op = self._new_op(conn, key, "delete", request_id, None)
            conn.execute("COMMIT")
            return op
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def poll(self, op: Operation) -> Operation:
        conn = self._tx("poll", op.target)
        try:
            conn.execute("UPDATE operations SET polls = polls + 1 WHERE name = ?", (op.name,))
            self._settle(conn)
            current = self._op(conn, op.name)
            conn.execute("COMMIT")
            return current
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def wait(self, op: Operation, timeout: float) -> Operation:
        row = (
            self._conn()
            .execute("SELECT ready_at FROM operations WHERE name = ?", (op.name,))
            .fetchone()
        )
        if self.op_delay is not None:
            time.sleep(max(0.0, min(timeout, row[0] - time.time())))
            return self.poll(op)
        for _ in range(self.polls_to_done + 1):
            op = self.poll(op)
            if op.done:
                break
        return op

    def elapse(self) -> int:
        """Time passes at the cloud: every operation in flight finishes (its effect applied).
        Returns how many did."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("UPDATE meta SET v = v + ? WHERE k = 'tick'", (self.background_ticks + 1,))
            pending = conn.execute(
                "SELECT COUNT(*) FROM operations WHERE status != 'DONE'"
            ).fetchone()[0]
            conn.execute("UPDATE operations SET ready_at = 0 WHERE status != 'DONE'")
            self._settle(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(pending)

    def in_flight(self) -> int:
        row = self._conn().execute("SELECT COUNT(*) FROM operations WHERE status != 'DONE'")
        return int(row.fetchone()[0])

    def list(self, kind: str) -> list[Observed[Any]]:
        rows = self._conn().execute(
            "SELECT spec, fingerprint FROM resources WHERE kind = ? ORDER BY name", (kind,)
        )
        return [Observed(spec_from_data(kind, json.loads(s)), fp) for s, fp in rows]

    # -- inspection for assertions --------------------------------------------------------------

    def resources(self) -> dict[ResourceKey, ResourceSpec]:
        rows = self._conn().execute("SELECT kind, name, spec FROM resources")
        return {ResourceKey(k, n): spec_from_data(k, json.loads(s)) for k, n, s in rows}

    def effects(self) -> list[tuple[str, str, str]]:
        rows = self._conn().execute("SELECT kind, name, verb FROM effects ORDER BY seq")
        return [(k, n, v) for k, n, v in rows]

    def operations(self) -> list[tuple[str, str, str, str, float, float | None]]:
        rows = self._conn().execute(
            "SELECT kind, target, verb, status, started, finished FROM operations ORDER BY started"
        )
        return list(rows)

    def conflicts(self) -> int:
        return self._meta(self._conn(), "conflicts")

    def mutating_calls(self) -> int:
        return sum(1 for v, _, _ in self.calls if v in ("create", "update", "delete"))

    def put(self, spec: ResourceSpec) -> None:
        """Create a resource directly (as if someone made it outside mlplane)."""
        data = _dump(spec)
        self._conn().execute(
            "INSERT INTO resources VALUES (?,?,?,?)", (spec.KIND, spec.name, data, _fp(data, 0))
        )

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


def _dump(spec: ResourceSpec) -> str:
    return json.dumps(spec_to_data(spec), sort_keys=True)


def _fp(data: str, salt: int) -> str:
    return hashlib.sha256(f"{salt}:{data}".encode()).hexdigest()[:12]


class FakeProvider(ResourceProvider[ResourceSpec]):
    """One kind's provider over the shared FakeCloud."""

    def __init__(self, cloud: FakeCloud, kind: str) -> None:
        self.cloud = cloud
        self.kind = kind

    def create(self, spec: ResourceSpec, *, request_id: str) -> Operation:
        return self.cloud.create(spec, request_id)

    def get(self, key: ResourceKey) -> Observed[ResourceSpec]:
        return self.cloud.get(key)

    def update(self, spec: ResourceSpec, *, fingerprint: str | None, request_id: str) -> Operation:
        return self.cloud.update(spec, fingerprint, request_id)

    def delete(self, key: ResourceKey, *, request_id: str) -> Operation:
        return self.cloud.delete(key, request_id)

    def list(self) -> list[Observed[ResourceSpec]]:
        return self.cloud.list(self.kind)

    def get_operation(self, op: Operation) -> Operation:
        return self.cloud.poll(op)


class FakeProviderWithWait(FakeProvider, SupportsOperationWait):
    """The same, plus the server-side wait capability (Compute `*Operations.wait`)."""

    def wait_operation(self, op: Operation, timeout: float) -> Operation:
        return self.cloud.wait(op, timeout)


def register_fake(
    registry: ProviderRegistry, cloud: FakeCloud, *, name: str = "fake", wait: bool = False
) -> None:
    """One registry line per kind, as a real provider package would have."""
    cls = FakeProviderWithWait if wait else FakeProvider
    for kind in SPEC_TYPES:
        registry.register(name, kind, lambda ctx, k=kind: cls(cloud, k))


def fake_providers(cloud: FakeCloud, *, wait: bool = False) -> ProviderSet:
    from mlplane.providers.base import ProviderContext

    registry = ProviderRegistry()
    register_fake(registry, cloud, wait=wait)
    return registry.build("fake", ProviderContext(project="test-proj"))


class FakeAuthorizer:
    """Grants by member (`None`: everything), minus `deny`. Records every check."""

    def __init__(
        self,
        grants: dict[str, set[str]] | None = None,
        deny: set[str] | None = None,
        sanctioned_path: str | None = None,
    ) -> None:
        self.grants = grants
        self.deny = set(deny or ())
        self.sanctioned_path = sanctioned_path
        self.checks: list[tuple[str, tuple[str, ...], ResourceRef | None]] = []

    def authorize(
        self,
        principal: Principal,
        what: str | Any,
        resource: ResourceRef | None = None,
    ) -> Decision:
        perms = (what,) if isinstance(what, str) else tuple(what)
        self.checks.append((principal.member, perms, resource))
        held = None if self.grants is None else self.grants.get(principal.member, set())
        missing = tuple(p for p in perms if (held is not None and p not in held) or p in self.deny)
        return Decision(
            allowed=not missing,
            principal=principal,
            permissions=perms,
            resource=resource or ResourceRef("project", "test-proj", "test-proj"),
            granted_by={} if missing else {p: "roles/fake" for p in perms},
            missing=missing,
            sanctioned_path=self.sanctioned_path if missing else None,
        )


class FakeClock:
    """Monotonic time that only moves when someone sleeps; sleeps return at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(seconds, 0.0)


# -- scenario helpers shared by the tests, the crash/concurrency children and the benchmark ----

PROJECT = "test-proj"
ENDPOINTS = "mlplane.endpoints.test-proj.cloud.goog"
SERVING_SA = "serving@test-proj.iam.gserviceaccount.com"


def principal() -> Principal:
    return Principal.parse(f"serviceAccount:{SERVING_SA}")


def revision_settings() -> Any:
    from mlplane.model.compute import RevisionSettings

    return RevisionSettings(zone="us-central1-a", service_account=SERVING_SA)


def bundle(service: str = "sentiment", rev: str = "r1") -> Any:
    from mlplane.model.compute import revision_bundle

    return revision_bundle(service, rev, revision_settings())


def bootstrap_state() -> Any:
    from mlplane.engine import DesiredState, StackSpec
    from mlplane.model.compute import FRONTEND_STACK, frontend

    return DesiredState.of(
        StackSpec(FRONTEND_STACK, frontend(endpoints_service=ENDPOINTS).resources)
    )


def deploy_state(service: str = "sentiment", rev: str = "r1") -> Any:
    """A revision stack plus its route (100 %) and its API paths."""
    from mlplane.engine import DesiredState, StackSpec
    from mlplane.model.compute import api_paths, route_to

    b = bundle(service, rev)
    changes = (route_to(service, [(b, 100)]), api_paths(service, ENDPOINTS))
    return DesiredState.of(StackSpec(b.stack, b.resources, changes))


def retire_state(service: str = "sentiment", rev: str = "r1") -> Any:
    """Tear a revision down: detach it from the URL map and the API, delete its stack."""
    from mlplane.engine import DesiredState, StackSpec
    from mlplane.model.compute import detach, remove_api_paths

    b = bundle(service, rev)
    changes = (detach(b), remove_api_paths(service, ENDPOINTS))
    return DesiredState.of(StackSpec(b.stack, (), changes))


class FastClock:
    """Real time, but sleeps capped at 5 ms (child processes of the crash tests)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(min(max(seconds, 0.0), 0.005))


@dataclass
class World:
    dir: Path
    cloud: FakeCloud
    store: Any
    engine: Any
    clock: Any
    authorizer: FakeAuthorizer

    def apply(self, desired: Any, **kw: Any) -> Any:
        return self.engine.apply(desired, principal(), **kw)

    def close(self) -> None:
        self.cloud.close()
        self.store.close()


def make_world(
    directory: Path,
    *,
    polls_to_done: int = 2,
    op_delay: float | None = None,
    wait: bool = False,
    grants: dict[str, set[str]] | None = None,
    deny: set[str] | None = None,
    clock: Any = None,
    on_event: Callable[[Any], None] | None = None,
    read_delay: dict[str, float] | None = None,
    retry: Any = None,
    max_workers: int = 8,
) -> World:
    from mlplane.engine import Engine, EngineSettings, RetryPolicy, StateStore
    from mlplane.providers.base import PollPolicy

    directory.mkdir(parents=True, exist_ok=True)
    cloud = FakeCloud(
        directory / "cloud.db",
        polls_to_done=polls_to_done,
        op_delay=op_delay,
        read_delay=dict(read_delay or {}),
    )
    store = StateStore(directory / "state.db")
    authorizer = FakeAuthorizer(grants, deny)
    clock = clock if clock is not None else FakeClock()
    settings = EngineSettings(
        project=PROJECT,
        max_workers=max_workers,
        retry=retry or RetryPolicy(),
        poll=PollPolicy(initial=0.01, factor=1.5, maximum=0.05),
    )
    engine = Engine(
        store, fake_providers(cloud, wait=wait), authorizer, settings, clock=clock,
        on_event=on_event,
    )  # fmt: skip
    return World(directory, cloud, store, engine, clock, authorizer)


SCENARIOS: dict[str, Callable[[str, str], Any]] = {
    "deploy": deploy_state,
    "retire": retire_state,
}


def run_child(
    directory: str,
    scenario: str,
    service: str,
    rev: str,
    crash_point: Any = None,
    barrier: str = "",
    read_delay: float = 0.0,
    marker: str = "",
) -> None:
    """Body of a crash/concurrency child process: apply a scenario; with `crash_point` (a
    `mlplane.engine.crashpoints.CrashPoint`), die there with status 137 as abruptly as kill -9
    (no cleanup, no flush, no `finally`), after writing the point's name to `marker`."""
    import os

    from mlplane.engine.crashpoints import CrashAt

    hook = None if crash_point is None else CrashAt(crash_point, marker=marker or None)
    world = make_world(
        Path(directory),
        clock=FastClock(),
        on_event=hook,
        read_delay={"urlMap": read_delay, "endpointsConfig": read_delay} if read_delay else None,
    )
    if barrier:
        Path(barrier + f".{os.getpid()}").touch()
        deadline = time.monotonic() + 20
        while len(list(Path(barrier).parent.glob(Path(barrier).name + ".*"))) < 2:
            if time.monotonic() > deadline:
                os._exit(3)
            time.sleep(0.002)
    desired = SCENARIOS[scenario](service, rev)
    report = world.apply(desired)
    os._exit(0 if report.ok else 1)


def child_main() -> None:
    """`python -c 'import fake_provider; fake_provider.child_main()' DIR SCENARIO SERVICE REV
    KIND STEP PHASE MARKER`: run_child in a fresh interpreter, dying at the named point."""
    import sys

    from mlplane.engine.crashpoints import CrashPoint

    directory, scenario, service, rev, kind, step, phase, marker = sys.argv[1:9]
    run_child(directory, scenario, service, rev, CrashPoint(kind, step, phase), marker=marker)
