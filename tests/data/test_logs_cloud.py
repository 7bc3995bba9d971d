"""The Cloud Logging backend at the official client's boundary: the request LogWriter's batches
become is google-cloud-logging's own `WriteLogEntriesRequest`, its entries say what the local
store says, and the client's errors map into mlplane's taxonomy. Skipped without the pip
package google-cloud-logging (not a core dependency)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "google.cloud.logging_v2", reason="pip package google-cloud-logging is not installed"
)

from google.api_core import exceptions as gexc
from google.cloud.logging_v2.types import LogEntry as ProtoEntry
from google.cloud.logging_v2.types import WriteLogEntriesRequest
from google.logging.type.log_severity_pb2 import LogSeverity

from mlplane.data.logs import LocalLogStore, LogQuery, LogWriter, read_entries
from mlplane.data.logs.cloud import MAX_ENTRIES, CloudLoggingSink
from mlplane.data.logs.entry import parse_rfc3339
from mlplane.errors import PermanentError, PermissionDenied, TransientError


class FakeClient:
    """Stands in for LoggingServiceV2Client: records what write_log_entries is given."""

    def __init__(self, error: Exception | None = None) -> None:
        self.requests: list[Any] = []
        self.error = error

    def write_log_entries(self, request: Any = None, **_: Any) -> None:
        if self.error is not None:
            raise self.error
        self.requests.append(request)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GCE_METADATA_HOST", "MLPLANE_INSTANCE_NAME", "MLPLANE_PROJECT", "MLPLANE_USER"):
        monkeypatch.delenv(var, raising=False)


def write_both(project_file: Path, sink: CloudLoggingSink) -> None:
    for store in (sink, None):  # the same entries to Cloud Logging and to the local store
        with LogWriter(
            "train-g", project_file=project_file, principal="training", store=store
        ) as w:
            w.write("epoch 1", "NOTICE")
            w.write({"message": "done", "loss": 0.25, "steps": 3}, "WARNING", {"run": "r1"})


def test_batches_become_write_log_entries_requests(project_file: Path) -> None:
    client = FakeClient()
    write_both(project_file, CloudLoggingSink(client))
    assert len(client.requests) == 1
    req = client.requests[0]
    assert isinstance(req, WriteLogEntriesRequest)
    local = read_entries(LocalLogStore.for_project(project_file), LogQuery("train-g"))
    for pb, mine in zip(req.entries, local, strict=True):
        got = ProtoEntry.to_dict(pb)
        want = mine.to_json()
        assert got["log_name"] == want["logName"] == "projects/acme-ml/logs/cos_containers"
        assert got["resource"] == want["resource"]
        assert got["resource"]["type"] == "gce_instance"
        assert LogSeverity.Name(pb.severity) == want["severity"]
        assert got["labels"] == want["labels"]
        assert got.get("text_payload") == want.get("textPayload")
        assert (got.get("json_payload") or None) == want.get("jsonPayload")
        assert pb.timestamp.timestamp_pb().seconds == parse_rfc3339(want["timestamp"]) // 10**9
    assert req.partial_success is False


def test_large_batches_are_split(project_file: Path) -> None:
    client = FakeClient()
    with LogWriter(
        "train-g",
        project_file=project_file,
        principal="training",
        store=CloudLoggingSink(client),
        flush_interval=60,
        max_batch=10**6,
    ) as w:
        for i in range(MAX_ENTRIES + 5):
            w.write(f"line {i}")
    assert [len(r.entries) for r in client.requests] == [MAX_ENTRIES, 5]


@pytest.mark.parametrize(
    ("error", "mapped"),
    [
        (gexc.PermissionDenied("caller lacks logging.logEntries.create"), PermissionDenied),
        (gexc.ServiceUnavailable("try later"), TransientError),
        (gexc.TooManyRequests("quota"), TransientError),
        (gexc.InvalidArgument("bad entry"), PermanentError),
    ],
)
def test_client_errors_map_into_mlplane_errors(
    project_file: Path, error: Exception, mapped: type[Exception]
) -> None:
    sink = CloudLoggingSink(FakeClient(error))
    with LogWriter("train-g", project_file=project_file, principal="training") as w:
        w.write("x")
    data = LocalLogStore.for_project(project_file).path("train-g", "cos_containers").read_bytes()
    with pytest.raises(mapped):
        sink.append("train-g", "cos_containers", data)


def test_the_model_still_denies_users_before_any_request(project_file: Path) -> None:
    client = FakeClient()
    with pytest.raises(PermissionDenied, match="Sanctioned path"):
        LogWriter(
            "train-g",
            project_file=project_file,
            principal="alice@acme.com",
            store=CloudLoggingSink(client),
        )
    assert client.requests == []
