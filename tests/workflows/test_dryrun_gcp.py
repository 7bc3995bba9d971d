"""A dry run against Google's own endpoints (`provider = "gcp"`) sends no mutating request: the
client's transport fails the test on any method but GET (and answers every GET 404, as a new
project would). No network: nothing leaves this process."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplane.apis.credentials import StaticToken
from mlplane.apis.endpoints import Endpoints
from mlplane.apis.transport import HttpResponse, Transport
from mlplane.errors import PermissionDenied
from mlplane.model.principals import Principal
from mlplane.providers.gcp.client import GoogleApis
from mlplane.workflows import dryrun
from mlplane.workflows.project_file import write_project_file
from mlplane.workflows.serving import DeployRequest
from mlplane.workflows.session import Session
from tests.dryrun_helpers import method_id

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sentiment" / "train.toml"
GOOGLE = Endpoints.google()
NOT_FOUND = {"error": {"code": 404, "message": "not found", "errors": [{"reason": "notFound"}]}}


class GetOnly(Transport):
    """Answers GETs with 404; any other method fails the test before anything could be sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str]] = []

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        if method != "GET":
            raise AssertionError(f"a dry run sent {method} {url}")
        self.sent.append((method, url))
        return HttpResponse(404, NOT_FOUND, {})


STATE = "/storage/v1/b/acme-ml-mlplane-state/o/mlplane%2Fstate.db"


def only_the_team_state_read(transport: GetOnly) -> bool:
    """Nothing sent but GETs of the team state's object (provider gcp: decision 1500)."""
    return all(m == "GET" and STATE in url for m, url in transport.sent)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "mlplane.toml"
    write_project_file(path, project_id="acme-ml", provider="gcp", members=["user:alice@acme.com"])
    return path


def session_as(project: Path, who: str) -> tuple[Session, GetOnly]:
    transport = GetOnly()
    session = Session.open(project)
    session.__dict__["api"] = GoogleApis(GOOGLE, StaticToken("token", who), transport)
    session.__dict__["principal"] = Principal.parse(who)
    return session, transport


def test_the_deploy_step_dry_run_sends_only_reads_to_google(project: Path) -> None:
    serving = "serviceAccount:mlplane-serving@acme-ml.iam.gserviceaccount.com"
    s, transport = session_as(project, serving)
    req = DeployRequest("sentiment", "r1", "gs://acme-ml-mlplane-artifacts/sentiment/b1/")
    dry = dryrun.deploy_step(s, req)
    assert transport.sent and all(m == "GET" for m, _ in transport.sent)
    hosts = {url.split("/")[2] for _, url in transport.sent}
    # reads only: the resources, the Endpoints service, and the team state's object (gcp)
    assert hosts == {
        "compute.googleapis.com",
        "servicemanagement.googleapis.com",
        "storage.googleapis.com",
    }
    methods = [method_id(r, GOOGLE) for r in dry.log.requests]
    for expected in (
        "compute.globalForwardingRules.insert",
        "compute.urlMaps.insert",
        "compute.instanceGroupManagers.insert",
        "compute.instanceGroups.setNamedPorts",
        "servicemanagement.services.configs.submit",
        "servicemanagement.services.rollouts.create",
        "serviceusage.services.enable",
    ):
        assert expected in methods
    [rule] = [r for r in dry.log.requests if "/global/forwardingRules" in r.url]
    assert rule.body["portRange"] == "80"
    [rollout] = [r for r in dry.log.requests if r.url.endswith("/rollouts")]
    assert rollout.body["trafficPercentStrategy"]["percentages"] == {"<CONFIG_ID>": 100.0}
    assert "http://models.endpoints.acme-ml.cloud.goog/v1/revisions/sentiment-r1/" in (dry.render())


def test_trigger_and_training_dry_runs_send_nothing_to_google(project: Path) -> None:
    s, transport = session_as(project, "user:alice@acme.com")
    dry = dryrun.bootstrap(s)
    [run] = dry.log.requests
    assert run.url == "https://cloudbuild.googleapis.com/v1/projects/acme-ml/triggers/deploy:run"
    assert method_id(run, GOOGLE) == "cloudbuild.projects.triggers.run"
    assert only_the_team_state_read(transport)  # the trigger run needs no other read
    dry = dryrun.train_remote(s, EXAMPLE, wait=True)
    [insert] = dry.log.requests
    assert insert.url.startswith(
        "https://compute.googleapis.com/compute/v1/projects/acme-ml/zones/us-central1-a/instances?"
    )
    assert method_id(insert, GOOGLE) == "compute.instances.insert"
    assert [m for m, url in transport.sent if STATE not in url] == ["GET"]


def test_a_denied_dry_run_sends_nothing_but_a_read_of_the_team_state(project: Path) -> None:
    s, transport = session_as(project, "user:alice@acme.com")
    req = DeployRequest("sentiment", "r1", "gs://acme-ml-mlplane-artifacts/x/")
    with pytest.raises(PermissionDenied, match=r"DENY user:alice@acme\.com"):
        dryrun.deploy_step(s, req)  # the model reserves the step for the serving account
    assert only_the_team_state_read(transport)
