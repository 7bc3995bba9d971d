"""Named crash points: where an apply can die, and journal hooks that kill it at one of them.

A crash point is named by what is happening, not by when it happens in a run: (resource kind,
step, phase), e.g. `(instanceTemplate, create:instanceTemplate/x, after-call)`, plus an
occurrence number when one run passes the same point more than once (a workflow that applies
twice, a retried call). Independent steps run on several threads, so the N-th journal event of a
run is a different point from run to run; a named point is not. A sweep therefore learns the
points from one run (`PointRecorder`), then kills a fresh run at each one (`CrashAt`), and every
point is reached whatever the threads' interleaving. Events emitted while a later run rolls a
dead run's intent forward have phases of their own (`recovery:after-call`, ...), so a second
crash can be aimed at the recovery itself.

    recorder = PointRecorder()
    Engine(..., on_event=recorder).apply(desired, who)        # learn: recorder.points
    Engine(..., on_event=CrashAt(recorder.points[7], marker=path)).apply(desired, who)  # dies
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from .journal import EventKind, JournalEvent

PHASES: dict[EventKind, str] = {
    EventKind.INTENT: "after-intent",  # intent journaled; nothing sent yet
    EventKind.CALLED: "after-call",  # the provider took the call; its operation not journaled
    EventKind.OPERATION: "after-operation",  # the operation's name is journaled
    EventKind.FINISHED: "after-finish",  # the operation is done; the result not recorded
    EventKind.RECORDED: "after-record",  # state row written and intent closed
    EventKind.FAILED: "after-fail",  # intent closed as failed
}
RECOVERY = "recovery:"


@dataclass(frozen=True, order=True)
class CrashPoint:
    kind: str
    step: str
    phase: str
    occurrence: int = 1

    @property
    def in_recovery(self) -> bool:
        return self.phase.startswith(RECOVERY)

    def __str__(self) -> str:
        nth = f" #{self.occurrence}" if self.occurrence > 1 else ""
        return f"({self.kind}, {self.step}, {self.phase}){nth}"


def phase_of(event: JournalEvent) -> str:
    return (RECOVERY if event.recovering else "") + PHASES[event.kind]


class _Namer:
    """Names events, numbering repeats of the same (kind, step, phase). One step runs on one
    thread at a time, so the numbering does not depend on how threads interleave."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str], int] = {}

    def name(self, event: JournalEvent) -> CrashPoint:
        base = (event.key.kind, event.step_id, phase_of(event))
        with self._lock:
            n = self._seen[base] = self._seen.get(base, 0) + 1
        return CrashPoint(*base, occurrence=n)


class PointRecorder:
    """A journal hook that names every event it sees, in the order seen (a counting run)."""

    def __init__(self) -> None:
        self._namer = _Namer()
        self._lock = threading.Lock()
        self.points: list[CrashPoint] = []

    def __call__(self, event: JournalEvent) -> None:
        point = self._namer.name(event)
        with self._lock:
            self.points.append(point)

    def clear(self) -> None:
        """Forget what was seen (e.g. the set-up's events); numbering starts again too."""
        with self._lock:
            self.points.clear()
            self._namer = _Namer()


def exit_137() -> NoReturn:
    """Die at once like kill -9 (exit status 137): no cleanup, no flush, no `finally`."""
    os._exit(137)


def sigkill_self() -> NoReturn:
    """Die by a real SIGKILL sent to this process."""
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: SIGKILL was sent")


class CrashAt:
    """A journal hook that kills the process when `target` is reached. With `marker`, the
    point's name is written there first (a file the sweep reads to prove the point was hit)."""

    def __init__(
        self,
        target: CrashPoint,
        *,
        die: Callable[[], NoReturn] = exit_137,
        marker: Path | str | None = None,
        then: Callable[[JournalEvent], None] | None = None,
    ) -> None:
        self.target = target
        self.die = die
        self.marker = None if marker is None else Path(marker)
        self.then = then
        self._namer = _Namer()

    def __call__(self, event: JournalEvent) -> None:
        if self._namer.name(event) == self.target:
            if self.marker is not None:
                fd = os.open(self.marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, str(self.target).encode())
                finally:
                    os.close(fd)
            self.die()
        if self.then is not None:
            self.then(event)


def reached(marker: Path | str) -> str | None:
    """The point a killed run wrote to `marker` (None: it died elsewhere, or did not die)."""
    try:
        return Path(marker).read_text()
    except FileNotFoundError:
        return None
