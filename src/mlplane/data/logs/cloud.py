"""The Cloud Logging backend: `entries.write` through google-cloud-logging's GAPIC client.

`CloudLoggingSink` has the local store's `append(resource, log_id, data)` shape, so a
`LogWriter(..., store=CloudLoggingSink())` batches and flushes exactly as it does locally; each
flushed batch becomes one `WriteLogEntriesRequest`. google-cloud-logging is imported lazily
(pip package `google-cloud-logging`, not a core dependency); its errors are mapped here into
mlplane's taxonomy, so nothing above this module sees them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mlplane.data.logs.entry import LogEntry
from mlplane.errors import PermanentError, PermissionDenied, TransientError

PIP_PACKAGE = "google-cloud-logging"
MAX_ENTRIES = 1000  # entries per request (Cloud Logging's quota is 10 MB per request)


def to_proto(entry: LogEntry) -> Any:
    """A `google.cloud.logging_v2.types.LogEntry` with the entry's fields."""
    from google.api.monitored_resource_pb2 import MonitoredResource
    from google.cloud.logging_v2.types import LogEntry as ProtoEntry
    from google.protobuf.struct_pb2 import Struct
    from google.protobuf.timestamp_pb2 import Timestamp

    d = entry.to_json()
    secs, nanos = divmod(entry.timestamp_ns, 1_000_000_000)
    fields: dict[str, Any] = {
        "log_name": entry.log_name,
        "resource": MonitoredResource(type=d["resource"]["type"], labels=d["resource"]["labels"]),
        "timestamp": Timestamp(seconds=secs, nanos=nanos),
        "severity": int(entry.severity),
        "insert_id": entry.insert_id,
        "labels": d["labels"],
    }
    if entry.text_payload is not None:
        fields["text_payload"] = entry.text_payload
    else:
        payload = Struct()
        payload.update(json.loads(json.dumps(d["jsonPayload"], default=str)))
        fields["json_payload"] = payload
    return ProtoEntry(**fields)


def write_request(entries: Sequence[LogEntry]) -> Any:
    from google.cloud.logging_v2.types import WriteLogEntriesRequest

    return WriteLogEntriesRequest(entries=[to_proto(e) for e in entries], partial_success=False)


class CloudLoggingSink:
    """Sends batches with `LoggingServiceV2Client.write_log_entries` (a client is made with
    Application Default Credentials unless one is given: on GCE, the VM's service account)."""

    def __init__(self, client: Any = None) -> None:
        if client is None:
            try:
                from google.cloud.logging_v2.services.logging_service_v2 import (
                    LoggingServiceV2Client,
                )
            except ImportError:
                raise PermanentError(
                    f"the Cloud Logging backend needs the pip package {PIP_PACKAGE}"
                ) from None
            client = LoggingServiceV2Client()
        self.client = client

    def append(self, resource: str, log_id: str, data: bytes) -> None:
        entries = [LogEntry.from_json(json.loads(line)) for line in data.splitlines() if line]
        for i in range(0, len(entries), MAX_ENTRIES):
            self._send(entries[i : i + MAX_ENTRIES])

    def _send(self, entries: Sequence[LogEntry]) -> None:
        from google.api_core import exceptions as gexc

        try:
            self.client.write_log_entries(request=write_request(entries))
        except gexc.PermissionDenied as exc:
            raise PermissionDenied(
                f"Cloud Logging refused entries.write: {exc.message} (the writer needs "
                "logging.logEntries.create: action 'training.write-logs')"
            ) from None
        except (gexc.TooManyRequests, gexc.ServiceUnavailable, gexc.DeadlineExceeded) as exc:
            raise TransientError(f"Cloud Logging: {exc.message}", delay=2.0) from None
        except gexc.GoogleAPICallError as exc:
            raise PermanentError(f"Cloud Logging: {exc.message}") from None
