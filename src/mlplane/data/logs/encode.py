"""Entries -> JSON lines, fast: the constant part of a line (log name, resource, labels) is
encoded once per stream, so a chatty job pays for its timestamp and its text only."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mlplane.data.logs.entry import NAME_LABEL, MonitoredResource, Severity


class Clock:
    """RFC 3339 timestamps, formatting the seconds part once per second (thread-safe: the
    cache is one tuple, replaced whole)."""

    def __init__(self) -> None:
        self._cache: tuple[int, str] = (-1, "")

    def stamp(self, ns: int) -> str:
        sec, nanos = divmod(ns, 1_000_000_000)
        cache = self._cache
        if cache[0] != sec:
            cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
            self._cache = cache
        return f"{cache[1]}.{nanos:09d}Z"


class InsertIds:
    """Unique insertIds: a random prefix per writer and a counter (`next` of an
    itertools.count is atomic in CPython)."""

    def __init__(self) -> None:
        self.prefix = secrets.token_hex(6)
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self.counter):x}"


class LineEncoder:
    """Encodes entries of one log, resource, severity and label set."""

    def __init__(
        self,
        log_name: str,
        resource: MonitoredResource,
        severity: Severity,
        labels: Mapping[str, str],
        clock: Clock,
        ids: InsertIds,
    ) -> None:
        head = {"logName": log_name, "resource": resource.to_json()}
        self._head = json.dumps(head, separators=(",", ":"))[:-1]
        self._sev = json.dumps(severity.name)
        all_labels = {NAME_LABEL: resource.name, **labels}
        self._tail = ',"labels":' + json.dumps(all_labels, separators=(",", ":")) + "}\n"
        self._clock = clock
        self._ids = ids
        self._mid = '","textPayload":"'
        self._post = '"' + self._tail

    def text_lines(self, ns: int, texts: Sequence[str]) -> str:
        """Many text entries at once, with one timestamp: pipe mode's fast path."""
        return self.texts_at([(ns, t) for t in texts])

    def texts_at(self, items: Sequence[tuple[int, str]]) -> str:
        """Text entries (timestamp, text) encoded together.

        One `json.dumps` encodes every text; inside a JSON string each `"` is escaped, so
        `","` occurs in the array's encoding only between its elements."""
        if not items:
            return ""
        encoded = json.dumps([t for _, t in items], separators=(",", ":"))[2:-2].split('","')
        head = f'{self._head},"timestamp":"'
        sev = f'","severity":{self._sev},"insertId":"{self._ids.prefix}-'
        mid, post, stamp, counter = self._mid, self._post, self._clock.stamp, self._ids.counter
        return "".join(
            f"{head}{stamp(ns)}{sev}{next(counter):x}{mid}{t}{post}"
            for (ns, _), t in zip(items, encoded, strict=True)
        )

    def line(self, ns: int, payload: str | Mapping[str, Any]) -> str:
        if isinstance(payload, str):
            body = ',"textPayload":' + json.dumps(payload)
        else:
            body = ',"jsonPayload":' + json.dumps(dict(payload), default=str)
        return (
            f'{self._head},"timestamp":"{self._clock.stamp(ns)}","severity":{self._sev},'
            f'"insertId":"{self._ids.next()}"{body}{self._tail}'
        )
