"""Reading entries back: one instance's logs merged by timestamp, filtered by `--since` and a
minimum severity, and followed as they grow.

Reading is allowed to every team member (docs/decisions/0700-logs.md): the model has no read
action for logs, and the entries are the team's own jobs' output.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mlplane.data.identity import Caller
from mlplane.data.logs.entry import LogEntry, Severity, parse_rfc3339, rfc3339
from mlplane.data.logs.store import LocalLogStore, read_lines
from mlplane.errors import ConfigError, PermissionDenied

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d)")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now_ns: int | None = None) -> int:
    """`10m`, `2h`, `30s`, `1d` (before now) or an RFC 3339 timestamp -> nanoseconds."""
    m = _DURATION.fullmatch(text.strip())
    now = time.time_ns() if now_ns is None else now_ns
    if m:
        return now - int(float(m.group(1)) * _UNIT[m.group(2)] * 1_000_000_000)
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise ConfigError(
            "--since", "", f"'{text}' is neither a duration (30s, 10m, 2h, 1d) nor RFC 3339"
        ) from None


@dataclass(frozen=True)
class LogQuery:
    resource: str
    since_ns: int | None = None
    min_severity: Severity = Severity.DEFAULT
    log_id: str | None = None

    def matches(self, e: LogEntry) -> bool:
        return e.severity >= self.min_severity and (
            self.since_ns is None or e.timestamp_ns >= self.since_ns
        )


def require_reader(caller: Caller) -> None:
    """Team members (users named in the project, directly or through a group or domain), and
    the project's admins (roles/owner reads logs on GCP)."""
    team = {m for ms in caller.authz.policy.process_members.values() for m in ms}
    team |= set(caller.authz.policy.admins)
    if not team.intersection(caller.authz.members_of(caller.principal)):
        raise PermissionDenied(
            f"DENY {caller.principal} reading logs: only the team's members read logs "
            f"({', '.join(sorted(team)) or 'none in the project file'})"
        )


_TS = b'"timestamp":"'


def _older(line: bytes, since: bytes) -> bool:
    """Cheaply: is the entry's timestamp, as this package writes it (RFC 3339 UTC, 9 digits,
    which sorts as text), before `since`? False when unsure (the entry is then parsed)."""
    i = line.find(_TS)
    if i < 0:
        return False
    ts = line[i + len(_TS) : i + len(_TS) + 31]
    return ts[29:31] == b'Z"' and ts[:30] < since


class LogReader:
    """Reads one instance's entries; `follow` keeps a byte offset per log file."""

    def __init__(self, store: LocalLogStore, query: LogQuery) -> None:
        self.store = store
        self.query = query
        self._offsets: dict[Path, int] = {}

    def _files(self) -> list[Path]:
        logs = self.store.logs_of(self.query.resource)
        if self.query.log_id is not None:
            return [logs[self.query.log_id]] if self.query.log_id in logs else []
        return list(logs.values())

    def poll(self) -> list[LogEntry]:
        """Entries appended since the last poll (all, the first time), oldest first."""
        out: list[LogEntry] = []
        since = None if self.query.since_ns is None else rfc3339(self.query.since_ns).encode()
        for path in self._files():
            lines, self._offsets[path] = read_lines(path, self._offsets.get(path, 0))
            for line in lines:
                if since is not None and _older(line, since):
                    continue
                try:
                    entry = LogEntry.from_json(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue  # not an entry (a hand-edited file): skip it, keep reading
                if self.query.matches(entry):
                    out.append(entry)
        out.sort(key=lambda e: e.timestamp_ns)
        return out

    def follow(self, stop: Callable[[], bool], interval: float = 0.2) -> Iterator[LogEntry]:
        """Existing entries, then new ones as they arrive, until `stop()` is true."""
        while True:
            yield from self.poll()
            if stop():
                return
            time.sleep(interval)


def read_entries(store: LocalLogStore, query: LogQuery) -> list[LogEntry]:
    return LogReader(store, query).poll()
