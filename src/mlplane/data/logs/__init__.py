"""Logs: entries shaped as Cloud Logging's, stored locally under `.mlplane/logs/`.

Workload code writes with `LogWriter` (as its service account, `logging.logEntries.create`);
`python -m mlplane.data.logs.pipe --resource NAME -- CMD ...` turns a process's output into
entries; `mlplane logs NAME` reads them (docs/decisions/0700-logs.md).
"""

from mlplane.data.logs.entry import CONTAINER_LOG, LogEntry, MonitoredResource, Severity
from mlplane.data.logs.reader import LogQuery, LogReader, parse_since, read_entries
from mlplane.data.logs.store import LocalLogStore
from mlplane.data.logs.writer import LogWriter

__all__ = [
    "CONTAINER_LOG",
    "LocalLogStore",
    "LogEntry",
    "LogQuery",
    "LogReader",
    "LogWriter",
    "MonitoredResource",
    "Severity",
    "parse_since",
    "read_entries",
]
