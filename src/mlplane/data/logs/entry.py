"""Log entries shaped as Cloud Logging's `LogEntry` (logging.googleapis.com/v2).

An entry is a frozen dataclass whose `to_json()` is the REST representation: `logName`
(`projects/P/logs/LOG_ID`, the id URL-encoded), `resource` (a `gce_instance` monitored resource
with `instance_id`, `zone` and `project_id` labels), `timestamp` (RFC 3339, UTC, nanoseconds),
`severity` (the LogSeverity enum's name), `insertId`, `textPayload` or `jsonPayload`, `labels`.
"""

from __future__ import annotations

import enum
import functools
import json
import re
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlplane.errors import ConfigError

RESOURCE_TYPE = "gce_instance"
# The log the COS logging agent writes container stdout/stderr to (gcp-reference §6.2).
CONTAINER_LOG = "cos_containers"
# The label Compute Engine's logging agents put the instance's name in.
NAME_LABEL = "compute.googleapis.com/resource_name"

_INSTANCE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_LOG_ID = re.compile(r"[A-Za-z0-9_./-]{1,512}")


class Severity(enum.IntEnum):
    """google.logging.type.LogSeverity, with its numeric values (higher is more severe)."""

    DEFAULT = 0
    DEBUG = 100
    INFO = 200
    NOTICE = 300
    WARNING = 400
    ERROR = 500
    CRITICAL = 600
    ALERT = 700
    EMERGENCY = 800

    @classmethod
    def parse(cls, value: Severity | str | int) -> Severity:
        if isinstance(value, Severity):
            return value
        if isinstance(value, int):
            return cls(value)
        name = value.strip().upper()
        if name == "WARN":
            name = "WARNING"
        try:
            return cls[name]
        except KeyError:
            names = ", ".join(s.name for s in cls)
            raise ConfigError("severity", "", f"'{value}' is not one of {names}") from None


def check_instance_name(name: str) -> str:
    if not _INSTANCE_NAME.fullmatch(name):
        raise ConfigError(
            "resource",
            "",
            f"'{name}' is not an instance name (lowercase letters, digits and '-', "
            "starting with a letter, at most 63 characters)",
        )
    return name


def check_log_id(log_id: str) -> str:
    if not _LOG_ID.fullmatch(log_id):
        raise ConfigError(
            "log", "", f"'{log_id}' is not a log id (letters, digits, '_', '-', '.', '/')"
        )
    return log_id


@dataclass(frozen=True)
class MonitoredResource:
    """A `gce_instance` monitored resource; `name` is the instance's name (kept in the entry's
    `compute.googleapis.com/resource_name` label, as Compute Engine's agents do)."""

    name: str
    instance_id: str
    zone: str
    project_id: str

    def __post_init__(self) -> None:
        check_instance_name(self.name)

    def to_json(self) -> dict[str, Any]:
        labels = {"instance_id": self.instance_id, "zone": self.zone, "project_id": self.project_id}
        return {"type": RESOURCE_TYPE, "labels": labels}


@functools.lru_cache(maxsize=64)
def _resource(name: str, instance_id: str, zone: str, project_id: str) -> MonitoredResource:
    return MonitoredResource(name, instance_id, zone, project_id)


def log_name(project_id: str, log_id: str) -> str:
    return f"projects/{project_id}/logs/{urllib.parse.quote(check_log_id(log_id), safe='')}"


def log_id_of(name: str) -> str:
    return urllib.parse.unquote(name.rpartition("/logs/")[2])


def rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch -> `2026-11-25T16:15:12.123456789Z`."""
    secs, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", re.IGNORECASE
)


@functools.lru_cache(maxsize=1024)
def _epoch(base: str, offset: str) -> int:
    tz = "+00:00" if offset.upper() == "Z" else offset
    return int(datetime.fromisoformat(base + tz).astimezone(UTC).timestamp())


def parse_rfc3339(text: str) -> int:
    """RFC 3339 (any offset, up to nanoseconds) -> nanoseconds since the epoch; ValueError."""
    if len(text) == 30 and text[19] == "." and text[29] == "Z" and text[20:29].isdigit():
        return _epoch(text[:19], "Z") * 1_000_000_000 + int(text[20:29])  # as written here
    m = _RFC3339.fullmatch(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not an RFC 3339 timestamp (e.g. 2026-11-25T16:15:12Z)")
    base, frac, offset = m.groups()
    return _epoch(base, offset) * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


@dataclass(frozen=True)
class LogEntry:
    """One entry; exactly one of `text_payload` and `json_payload` is set."""

    log_name: str
    resource: MonitoredResource
    timestamp_ns: int
    severity: Severity
    insert_id: str
    text_payload: str | None = None
    json_payload: Mapping[str, Any] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.text_payload is None) == (self.json_payload is None):
            raise ValueError("a log entry has exactly one of textPayload and jsonPayload")

    @property
    def timestamp(self) -> str:
        return rfc3339(self.timestamp_ns)

    @property
    def log_id(self) -> str:
        return log_id_of(self.log_name)

    @property
    def message(self) -> str:
        """The payload as one line of text (jsonPayload's `message`, else its JSON)."""
        if self.text_payload is not None:
            return self.text_payload
        payload = dict(self.json_payload or {})
        msg = payload.get("message")
        return msg if isinstance(msg, str) else json.dumps(payload, sort_keys=True)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "logName": self.log_name,
            "resource": self.resource.to_json(),
            "timestamp": self.timestamp,
            "severity": self.severity.name,
            "insertId": self.insert_id,
        }
        if self.text_payload is not None:
            out["textPayload"] = self.text_payload
        else:
            out["jsonPayload"] = dict(self.json_payload or {})
        out["labels"] = {NAME_LABEL: self.resource.name, **self.labels}
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LogEntry:
        """The inverse of `to_json`; KeyError/ValueError/TypeError on a malformed entry."""
        labels = dict(d.get("labels") or {})
        name = labels.pop(NAME_LABEL, "")
        res = d["resource"]["labels"]
        resource = _resource(name, res["instance_id"], res["zone"], res["project_id"])
        return cls(
            log_name=d["logName"],
            resource=resource,
            timestamp_ns=parse_rfc3339(d["timestamp"]),
            severity=Severity[d.get("severity", "DEFAULT")],
            insert_id=d["insertId"],
            text_payload=d.get("textPayload"),
            json_payload=d.get("jsonPayload"),
            labels=labels,
        )
