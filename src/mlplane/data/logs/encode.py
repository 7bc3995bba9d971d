"""Entries -> JSON lines, fast: the constant part of a line (log name, resource, labels) is
encoded once per stream, so a chatty job pays for its timestamp and its text only."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mlplane.data.logs.entry import NAME_LABEL, MonitoredResource, Severity


class Clock:
    """RFC 3339 timestamps, formatting the seconds part once per second."""

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""

    def stamp(self, ns: int) -> str:
        sec, nanos = divmod(ns, 1_000_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._prefix}.{nanos:09d}Z"


class InsertIds:
    """Unique insertIds: a random prefix per writer and a counter."""

    def __init__(self) -> None:
        self.prefix = secrets.token_hex(6)
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return f"{self.prefix}-{self.n:x}"

    def take(self, count: int) -> range:
        """The counters of the next `count` ids."""
        start = self.n + 1
        self.n += count
        return range(start, start + count)


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
        """Many text entries at once (one timestamp): the fast path of pipe mode.

        One `json.dumps` encodes every text; inside a JSON string each `"` is escaped, so
        `","` occurs in the array's encoding only between its elements."""
        if not texts:
            return ""
        pre = (
            f'{self._head},"timestamp":"{self._clock.stamp(ns)}","severity":{self._sev},'
            f'"insertId":"{self._ids.prefix}-'
        )
        encoded = json.dumps(list(texts), separators=(",", ":"))[2:-2].split('","')
        mid, post = self._mid, self._post
        return "".join(
            f"{pre}{n:x}{mid}{t}{post}"
            for n, t in zip(self._ids.take(len(encoded)), encoded, strict=True)
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
