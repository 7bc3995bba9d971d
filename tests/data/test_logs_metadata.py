"""Under an instance's metadata endpoint (as the local agent runs workloads, and on GCE) a
LogWriter needs no arguments: it acts as the instance's service account and logs for the
instance, with its numeric id and zone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlplane.data.logs import LocalLogStore, LogQuery, LogWriter, read_entries
from mlplane.errors import PermissionDenied

TRAINING = "mlplane-training@acme-ml.iam.gserviceaccount.com"
# Serving VMs run as the serving runtime (the deployer identity runs builds, which log).
SERVING = "mlplane-serving-runtime@acme-ml.iam.gserviceaccount.com"


def answers(email: str) -> dict[str, str]:
    return {
        "instance/service-accounts/default/email": email,
        "instance/name": "train-md",
        "instance/id": "4242424242424242424",
        "instance/zone": "projects/123456789012/zones/us-east1-b",
        "project/project-id": "acme-ml",
    }


def metadata_server(values: dict[str, str]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            key = self.path.removeprefix("/computeMetadata/v1/")
            ok = self.headers.get("Metadata-Flavor") == "Google" and key in values
            body = values[key].encode() if ok else b""
            self.send_response(200 if ok else 404)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def metadata(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for var in ("MLPLANE_INSTANCE_NAME", "MLPLANE_PROJECT", "MLPLANE_USER", "MLPLANE_PRINCIPAL"):
        monkeypatch.delenv(var, raising=False)
    values = answers(TRAINING)
    server = metadata_server(values)
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{server.server_port}")
    yield values
    server.shutdown()
    server.server_close()


def test_the_instance_and_its_account_come_from_the_metadata_endpoint(
    project_file: Path, metadata: dict[str, str]
) -> None:
    with LogWriter(project_file=project_file) as w:
        w.write("from the instance")
    [entry] = read_entries(LocalLogStore.for_project(project_file), LogQuery("train-md"))
    assert entry.to_json()["resource"] == {
        "type": "gce_instance",
        "labels": {
            "instance_id": "4242424242424242424",
            "zone": "us-east1-b",
            "project_id": "acme-ml",
        },
    }
    assert w.caller.principal.email == TRAINING


def test_a_serving_instance_may_not_write_logs(
    project_file: Path, metadata: dict[str, str]
) -> None:
    metadata.update(answers(SERVING))
    with pytest.raises(PermissionDenied, match=r"training\.write-logs"):
        LogWriter(project_file=project_file)
