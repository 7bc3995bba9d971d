"""The real gcloud CLI drives the local agent unchanged: after a deploy (through the trigger) and
a notebook, `describe`/`list` of every kind show them, `get-health` reports the replicas, the
Endpoints service and its config are there, and a user's delete of the URL map is refused with
403 naming the permission, as Google would refuse it.

gcloud ships on these machines (google-cloud-cli); the suite skips where it is absent, except
under CI (`MLPLANE_REQUIRE_TOOLS=1`, set by .ci/run), where its absence is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlplane.apis.endpoints import Endpoints
from mlplane.examples.sentiment.train import train
from mlplane.workflows import notebooks
from mlplane.workflows.project_file import write_project_file
from mlplane.workflows.serving import DeployRequest, deploy
from tests.harness import ADMIN, Team, with_admin
from tests.iam.tools import REQUIRE

ALICE = "alice@acme.com"
PROJECT = "acme-ml"
ZONE = "us-central1-a"
GCLOUD = shutil.which("gcloud")

if GCLOUD is None:
    if os.environ.get(REQUIRE) == "1":
        raise RuntimeError(f"the gcloud CLI is required here ({REQUIRE}=1)")
    pytest.skip("the gcloud CLI (google-cloud-cli) is not installed", allow_module_level=True)

pytestmark = pytest.mark.timeout(300)


@dataclass
class World:
    team: Team
    root: Path
    notebook: str

    def gcloud(self, who: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run gcloud as `who` (a user signed in here), pointed at the agent."""
        token = self.team.api(who).credentials.token()
        token_file = self.root / f"gcloud-token-{who}"
        token_file.write_text(token)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CLOUDSDK_", "GOOGLE_", "GCE_METADATA"))
        }
        env.update(
            Endpoints.agent(self.team.endpoints.root("compute").rstrip("/")).environment(PROJECT)
        )
        env.update(
            {
                "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(token_file),
                "CLOUDSDK_CONFIG": str(self.root / "gcloud-config"),
                "CLOUDSDK_COMPUTE_ZONE": ZONE,
                "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            }
        )
        assert GCLOUD is not None
        proc = subprocess.run(
            [GCLOUD, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        if check:
            assert proc.returncode == 0, (args, proc.stderr[-2000:])
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.gcloud(ADMIN, *args, "--format=json").stdout)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("gcloud")
    project_file = root / "mlplane.toml"
    write_project_file(project_file, project_id=PROJECT, members=[f"user:{ALICE}"])
    project_file.write_text(with_admin(project_file.read_text()))
    artifact = Path(train(root / "model", progress=lambda *_: None))
    team = Team(project_file, root / "config")
    team.up()
    try:
        with team.acting(ALICE):
            session = team.session(ALICE)
            deploy(session, DeployRequest("sentiment", "r1", artifact), lambda *_: None)
            nb = notebooks.create(team.session(ALICE), "lab")
        yield World(team, root, nb.instance)
    finally:
        team.down()


def test_list_every_kind_shows_the_revision(world: World) -> None:
    expected = {
        ("compute", "instance-templates", "list"): "sentiment-r1-tmpl",
        ("compute", "instance-groups", "managed", "list"): "sentiment-r1-mig",
        ("compute", "health-checks", "list"): "sentiment-r1-hc",
        ("compute", "backend-services", "list"): "sentiment-r1-bes",
        ("compute", "url-maps", "list"): "mlplane-urlmap",
        ("compute", "target-http-proxies", "list"): "mlplane-http-proxy",
        ("compute", "forwarding-rules", "list"): "mlplane-http-fr",
        ("compute", "instance-groups", "list"): "sentiment-r1-mig",
    }
    for command, name in expected.items():
        names = {item["name"] for item in world.json(*command)}
        assert name in names, (command, names)


def test_describe_every_kind(world: World) -> None:
    tmpl = world.json("compute", "instance-templates", "describe", "sentiment-r1-tmpl")
    assert tmpl["properties"]["serviceAccounts"][0]["email"].startswith("mlplane-serving-runtime@")
    assert any(d.get("boot") for d in tmpl["properties"]["disks"])
    mig = world.json("compute", "instance-groups", "managed", "describe", "sentiment-r1-mig")
    assert mig["baseInstanceName"] == "srv-sentiment-r1" and mig["namedPorts"][0]["port"] == 8080
    assert mig["autoscaler"]["name"] == "sentiment-r1-as"  # gcloud looked the autoscaler up
    hc = world.json("compute", "health-checks", "describe", "sentiment-r1-hc")
    assert hc["httpHealthCheck"]["requestPath"] == "/healthz"
    bes = world.json("compute", "backend-services", "describe", "sentiment-r1-bes", "--global")
    assert bes["backends"][0]["group"].endswith("/instanceGroups/sentiment-r1-mig")
    assert bes["fingerprint"]
    url_map = world.json("compute", "url-maps", "describe", "mlplane-urlmap")
    rules = url_map["pathMatchers"][0]["routeRules"]
    assert any(r["matchRules"][0]["prefixMatch"] == "/v1/models/sentiment/" for r in rules)
    proxy = world.json("compute", "target-http-proxies", "describe", "mlplane-http-proxy")
    assert proxy["urlMap"].endswith("/urlMaps/mlplane-urlmap")
    rule = world.json("compute", "forwarding-rules", "describe", "mlplane-http-fr", "--global")
    assert rule["target"].endswith("/targetHttpProxies/mlplane-http-proxy")


def test_instances_list_shows_the_notebook_and_the_replica_with_their_internal_ip(
    world: World,
) -> None:
    instances = {i["name"]: i for i in world.json("compute", "instances", "list")}
    replica = [n for n in instances if n.startswith("srv-sentiment-r1-")]
    assert len(replica) == 1 and world.notebook in instances
    for name in (*replica, world.notebook):
        nic = instances[name]["networkInterfaces"][0]
        assert nic["networkIP"] == "127.0.0.1" and instances[name]["status"] == "RUNNING"
    table = world.gcloud(ADMIN, "compute", "instances", "list").stdout
    assert world.notebook in table and "127.0.0.1" in table
    # alice (experimentation: list instances) sees them too
    assert world.notebook in world.gcloud(ALICE, "compute", "instances", "list").stdout


def test_get_health_reports_the_replicas(world: World) -> None:
    out = world.json("compute", "backend-services", "get-health", "sentiment-r1-bes", "--global")
    [group] = out
    states = group["status"]["healthStatus"]
    assert len(states) == 1 and states[0]["healthState"] == "HEALTHY"
    assert states[0]["instance"].split("/")[-1].startswith("srv-sentiment-r1-")


def test_endpoints_service_and_its_current_config(world: World) -> None:
    service = "models.endpoints.acme-ml.cloud.goog"
    described = world.json("endpoints", "services", "describe", service)
    assert described == {"producerProjectId": PROJECT, "serviceName": service}
    [config] = world.json("endpoints", "configs", "list", f"--service={service}")
    current = world.json("endpoints", "configs", "describe", config["id"], f"--service={service}")
    rules = current["http"]["rules"]
    assert {"selector": "sentimentPredict", "post": "/v1/models/sentiment/predict"} in rules


def test_a_user_deleting_the_url_map_is_refused_with_403_naming_the_permission(
    world: World,
) -> None:
    proc = world.gcloud(
        ALICE, "compute", "url-maps", "delete", "mlplane-urlmap", "--global", check=False
    )
    assert proc.returncode != 0
    assert "Required 'compute.urlMaps.delete' permission" in proc.stderr
    assert "CI trigger 'undeploy'" in proc.stderr  # and the sanctioned path
    assert "mlplane-urlmap" in {u["name"] for u in world.json("compute", "url-maps", "list")}


def test_builds_are_cloud_builds(world: World) -> None:
    builds = world.json("builds", "list")
    deploys = [b for b in builds if b.get("substitutions", {}).get("_SERVICE") == "sentiment"]
    assert deploys and deploys[0]["status"] == "SUCCESS"
    assert deploys[0]["serviceAccount"].endswith("mlplane-serving@acme-ml.iam.gserviceaccount.com")
    triggers = {t["name"] for t in world.json("builds", "triggers", "list")}
    assert {"deploy", "undeploy", "train", "build-images"} <= triggers
