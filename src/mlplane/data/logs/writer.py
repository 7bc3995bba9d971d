"""`LogWriter`: workload code's entries into the project's log store, batched and flushed by a
background thread so that a chatty job is not slowed; flushed on `close()` and at exit.

Writing is the action `training.write-logs` (`logging.logEntries.create` on the project): the
writer is authorized as the workload's principal before it accepts an entry; users are denied
with the model's sanctioned path, as Cloud Logging would deny them.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from mlplane.data.identity import Caller
from mlplane.data.logs.encode import Clock, InsertIds, LineEncoder
from mlplane.data.logs.entry import (
    CONTAINER_LOG,
    MonitoredResource,
    Severity,
    log_name,
)
from mlplane.data.logs.resource import resolve_resource
from mlplane.data.logs.store import LocalLogStore, LogSink
from mlplane.errors import MlplaneError
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

WRITE_PERMISSION = "logging.logEntries.create"


class LogWriter:
    """`LogWriter("train-42").write("epoch 1 loss 0.3")`, `.write({"loss": 0.3}, "WARNING")`.

    `resource`: the instance's name (default: the metadata endpoint's instance, else
    $MLPLANE_INSTANCE_NAME) or a MonitoredResource. Entries go to log `log_id`
    (default `cos_containers`, where the COS agent puts container output on GCP).
    """

    def __init__(
        self,
        resource: str | MonitoredResource | None = None,
        log_id: str = CONTAINER_LOG,
        *,
        caller: Caller | None = None,
        project_file: Path | str | None = None,
        principal: Principal | str | None = None,
        labels: Mapping[str, str] | None = None,
        store: LogSink | None = None,
        flush_interval: float = 0.2,
        max_batch: int = 2000,
    ) -> None:
        self.caller = caller or Caller.resolve(project_file, principal)
        self.caller.require(WRITE_PERMISSION, ResourceRef.project_root(self.caller.project))
        if isinstance(resource, MonitoredResource):
            self.resource = resource
        else:
            self.resource = resolve_resource(
                resource, self.caller.project, self.caller.project_file
            )
        self.log_id = log_id
        self.log_name = log_name(self.resource.project_id, log_id)
        self.labels = dict(labels or {})
        self.store: LogSink = store or LocalLogStore.for_project(self.caller.project_file)
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self._clock = Clock()
        self._ids = InsertIds()
        self._encoders: dict[tuple[Severity, tuple[tuple[str, str], ...]], LineEncoder] = {}
        self._plain: dict[Severity | str, LineEncoder] = {}  # by severity, no extra labels
        self._pending: list[str] = []  # encoded lines, or runs of lines
        self._pending_lines = 0
        self._lock = threading.Lock()  # guards _pending and the encoders' counters
        self._flush_lock = threading.Lock()  # keeps batches in order
        self._wake = threading.Event()
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mlplane-log-writer", daemon=True)
        self._thread.start()
        atexit.register(self._close_at_exit)

    # ------------------------------------------------------------------ writing

    def encoder(self, severity: Severity | str = Severity.INFO, **labels: str) -> LineEncoder:
        sev = Severity.parse(severity)
        key = (sev, tuple(sorted(labels.items())))
        enc = self._encoders.get(key)
        if enc is None:
            merged = {**self.labels, **labels}
            enc = LineEncoder(self.log_name, self.resource, sev, merged, self._clock, self._ids)
            self._encoders[key] = enc
        return enc

    def write(
        self,
        payload: str | Mapping[str, Any],
        severity: Severity | str = Severity.INFO,
        labels: Mapping[str, str] | None = None,
        *,
        timestamp_ns: int | None = None,
    ) -> None:
        """Queue one entry: text becomes textPayload, a mapping jsonPayload; stamped now
        unless `timestamp_ns` says when it happened."""
        enc = self._plain.get(severity) if not labels else None
        if enc is None:
            enc = self.encoder(severity, **(labels or {}))
            if not labels:
                self._plain[severity] = enc
        if self._closed:
            raise MlplaneError(f"log writer for {self.resource.name} is closed")
        ns = time.time_ns() if timestamp_ns is None else timestamp_ns
        with self._lock:
            self._pending.append(enc.line(ns, payload))
            self._pending_lines += 1
            full = self._pending_lines >= self.max_batch
        if full:
            self._after_queue(full)

    def write_lines(self, payloads: Iterable[str | Mapping[str, Any]], enc: LineEncoder) -> None:
        """Queue entries encoded by `enc` (one timestamp per call: they arrived together)."""
        if self._closed:
            raise MlplaneError(f"log writer for {self.resource.name} is closed")
        ns = time.time_ns()
        with self._lock:
            before = len(self._pending)
            self._pending.extend(enc.line(ns, p) for p in payloads)
            self._pending_lines += len(self._pending) - before
            full = self._pending_lines >= self.max_batch
        self._after_queue(full)

    def write_texts(
        self, texts: Sequence[str], enc: LineEncoder, timestamp_ns: int | None = None
    ) -> None:
        """Queue text entries encoded by `enc`, encoded together (pipe mode's fast path)."""
        if self._closed:
            raise MlplaneError(f"log writer for {self.resource.name} is closed")
        ns = time.time_ns() if timestamp_ns is None else timestamp_ns
        with self._lock:
            self._pending.append(enc.text_lines(ns, texts))
            self._pending_lines += len(texts)
            full = self._pending_lines >= self.max_batch
        self._after_queue(full)

    def _after_queue(self, full: bool) -> None:
        if full:
            if self._pending_lines >= 8 * self.max_batch:  # the disk is behind: push back
                self.flush()
            else:
                self._wake.set()

    # ------------------------------------------------------------------ flushing

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
                self._pending_lines = 0
            if batch:
                self.store.append(self.resource.name, self.log_id, "".join(batch).encode())

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except (OSError, MlplaneError) as exc:  # reported by close(); the job runs on
                self._error = exc

    def close(self) -> None:
        """Flush everything written so far and stop the background thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        atexit.unregister(self._close_at_exit)
        self.flush()
        if self._error is not None:
            raise MlplaneError(f"could not write logs of {self.resource.name}: {self._error}")

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except MlplaneError as exc:  # the interpreter is going: say it, without a traceback
            print(f"mlplane: {exc}", file=sys.stderr)

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
