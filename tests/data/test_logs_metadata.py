"""Under an instance's metadata endpoint (as the local agent runs workloads, and on GCE) a
LogWriter needs no arguments: it acts as whoever the metadata server's token belongs to (the
token authority says whose, not the metadata server) and logs for the instance, with its
numeric id and zone."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlplane.data import identity
from mlplane.data.identity import NoIdentity
from mlplane.data.logs import LocalLogStore, LogQuery, LogWriter, read_entries
from mlplane.errors import PermissionDenied
from tests.harness import Team
from tests.teams import team_fixture, wipe

TRAINING = "mlplane-training@acme-ml.iam.gserviceaccount.com"
# Serving VMs run as the serving runtime (the deployer identity runs builds, which log).
SERVING = "mlplane-serving-runtime@acme-ml.iam.gserviceaccount.com"

team = team_fixture()


def answers(team: Team, account: str) -> dict[str, str]:
    """What an instance running as identity `account` has its metadata server say, with a token
    the project's admin obtained for that account (the agent issues an instance's token alike)."""
    token = team.token_file(account).read_text()
    email = f"mlplane-{account}@acme-ml.iam.gserviceaccount.com"
    return {
        "instance/service-accounts/default/email": email,
        "instance/service-accounts/default/token": json.dumps(
            {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        ),
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
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture
def metadata(team: Team, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The metadata server's answers (a test may change them), and os.environ pointing at it
    with no other identity in it, for the test's body."""
    monkeypatch.delenv("MLPLANE_INSTANCE_NAME", raising=False)
    wipe(team.project_file)
    values = answers(team, "training")
    server = metadata_server(values)
    # Callers are remembered by their credential variables; a port the OS hands out again
    # must not bring back an earlier test's instance.
    identity.forget()
    try:
        with team.environment(GCE_METADATA_HOST=f"127.0.0.1:{server.server_port}"):
            yield values
    finally:
        server.shutdown()
        server.server_close()


def test_the_instance_and_its_account_come_from_the_metadata_endpoint(
    team: Team, metadata: dict[str, str]
) -> None:
    with LogWriter(project_file=team.project_file) as w:
        w.write("from the instance")
    [entry] = read_entries(LocalLogStore.for_project(team.project_file), LogQuery("train-md"))
    assert entry.to_json()["resource"] == {
        "type": "gce_instance",
        "labels": {
            "instance_id": "4242424242424242424",
            "zone": "us-east1-b",
            "project_id": "acme-ml",
        },
    }
    assert w.caller.principal.email == TRAINING


def test_a_serving_instance_may_not_write_logs(team: Team, metadata: dict[str, str]) -> None:
    metadata.update(answers(team, "serving-runtime"))
    with pytest.raises(PermissionDenied, match=r"training\.write-logs"):
        LogWriter(project_file=team.project_file)


def test_the_token_decides_not_the_email_the_metadata_server_claims(
    team: Team, metadata: dict[str, str]
) -> None:
    """Whose token it is comes from the token authority (tokeninfo); the metadata server's
    email is not believed."""
    metadata["instance/service-accounts/default/token"] = answers(team, "serving-runtime")[
        "instance/service-accounts/default/token"
    ]
    assert metadata["instance/service-accounts/default/email"] == TRAINING
    with pytest.raises(PermissionDenied, match=f"serviceAccount:{SERVING}"):
        LogWriter(project_file=team.project_file)


def test_a_token_the_authority_never_issued_is_refused(
    team: Team, metadata: dict[str, str]
) -> None:
    metadata["instance/service-accounts/default/token"] = json.dumps(
        {"access_token": "ya29.forged", "expires_in": 3599}
    )
    with pytest.raises(NoIdentity, match=r"tokeninfo refused the token \(HTTP 400\)"):
        LogWriter(project_file=team.project_file)
    assert read_entries(LocalLogStore.for_project(team.project_file), LogQuery("train-md")) == []
