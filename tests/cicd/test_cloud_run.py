"""Cloud Run Admin v2 served by the agent, without a Docker engine: a service of mlplane's own
image runs its command as a process; revisions are made when the template changes, traffic
follows the latest ready one (or a split), each service answers on its own front end of the
load balancer; the IAM of each method is Cloud Run's; the declared auxiliary services are there
from the start; and gcloud's `run services describe|list` and `run revisions list` show it all.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from mlplane.errors import PermissionDenied
from mlplane.providers.gcp.client import GoogleApis
from tests.cicd.conftest import ALICE, CicdProject, gcloud_json
from tests.harness import ADMIN

LOC = "projects/acme-ml/locations/us-central1"


def wait_op(api: GoogleApis, op: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while not op.get("done"):
        assert time.monotonic() < deadline, op
        time.sleep(0.05)
        op = api.call("run.projects.locations.operations.get", {"name": op["name"]})
    return op


def serving_service(cp: CicdProject, version: str) -> dict[str, Any]:
    aux = cp.team.session(ADMIN).email("aux-runtime")
    return {
        "template": {
            "serviceAccount": aux,
            "containers": [
                {
                    "image": f"{cp.registry}/acme-ml/mlplane/serving:latest",
                    "command": ["python", "-m", "mlplane.serving"],
                    "args": ["--artifact", str(cp.artifact), "--base-path", "/m"],
                    "env": [{"name": "VERSION", "value": version}],
                }
            ],
        },
    }


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_service_runs_its_revisions_and_routes_traffic(no_engine_project: CicdProject) -> None:
    cp = no_engine_project
    admin = cp.team.api(ADMIN)
    op = admin.call(
        "run.projects.locations.services.create",
        {"parent": LOC, "serviceId": "echo"},
        serving_service(cp, "one"),
    )
    done = wait_op(admin, op)
    assert "error" not in done, done
    svc = done["response"]
    first = svc["latestReadyRevision"].rsplit("/", 1)[-1]
    assert first.startswith("echo-00001-") and svc["terminalCondition"]["state"] == (
        "CONDITION_SUCCEEDED"
    )
    status, body = get(svc["uri"] + "/m/healthz")
    assert status == 200 and json.loads(body)["status"] == "SERVING"

    # a new template is a new revision, and LATEST traffic moves to it
    done = wait_op(
        admin,
        admin.call(
            "run.projects.locations.services.patch",
            {"name": f"{LOC}/services/echo"},
            serving_service(cp, "two"),
        ),
    )
    svc = done["response"]
    second = svc["latestReadyRevision"].rsplit("/", 1)[-1]
    assert second.startswith("echo-00002-") and svc["trafficStatuses"][0]["revision"] == second
    revs = admin.call(
        "run.projects.locations.services.revisions.list", {"parent": f"{LOC}/services/echo"}
    )["revisions"]
    states = {r["name"].rsplit("/", 1)[-1]: r["conditions"][0] for r in revs}
    assert states[second]["state"] == "CONDITION_SUCCEEDED"
    assert states[first].get("reason") == "RETIRED"  # no traffic: scaled to zero
    # the same template again makes no revision
    done = wait_op(
        admin,
        admin.call(
            "run.projects.locations.services.patch",
            {"name": f"{LOC}/services/echo"},
            serving_service(cp, "two"),
        ),
    )
    assert done["response"]["latestCreatedRevision"].endswith(second)

    # a split: both revisions run again behind the service's own URL
    split = {
        "traffic": [
            {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": first, "percent": 50},
            {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": second, "percent": 50},
        ]
    }
    done = wait_op(
        admin,
        admin.call(
            "run.projects.locations.services.patch",
            {"name": f"{LOC}/services/echo", "updateMask": "traffic"},
            split,
        ),
    )
    assert sorted(t["percent"] for t in done["response"]["trafficStatuses"]) == [50, 50]
    assert all(get(svc["uri"] + "/m/healthz")[0] == 200 for _ in range(6))
    with pytest.raises(Exception, match="receives traffic"):
        admin.call(
            "run.projects.locations.services.revisions.delete",
            {"name": f"{LOC}/services/echo/revisions/{first}"},
        )


def test_a_team_image_needs_an_engine_and_the_service_keeps_serving(
    no_engine_project: CicdProject,
) -> None:
    cp = no_engine_project
    admin = cp.team.api(ADMIN)
    body = serving_service(cp, "x")
    body["template"]["containers"][0]["image"] = f"{cp.registry}/acme-ml/mlplane/hello@sha256:" + (
        "0" * 64
    )
    done = wait_op(
        admin,
        admin.call("run.projects.locations.services.patch", {"name": f"{LOC}/services/echo"}, body),
    )
    assert "needs a Docker engine" in done["error"]["message"]
    svc = admin.call("run.projects.locations.services.get", {"name": f"{LOC}/services/echo"})
    assert svc["terminalCondition"]["state"] == "CONDITION_FAILED"
    assert get(svc["uri"] + "/m/healthz")[0] == 200  # the revisions it had still serve


def test_cloud_run_iam_is_the_models(no_engine_project: CicdProject) -> None:
    cp = no_engine_project
    name = {"name": f"{LOC}/services/echo"}
    alice = cp.team.api(ALICE)
    with pytest.raises(PermissionDenied, match=r"run\.services\.get.*CI trigger 'build-images'"):
        alice.call("run.projects.locations.services.get", name)
    with pytest.raises(PermissionDenied, match=r"run\.services\.update"):
        alice.call("run.projects.locations.services.patch", name, serving_service(cp, "a"))
    cicd = cp.team.api("cicd")
    assert cicd.call("run.projects.locations.services.get", name)["name"].endswith("/echo")
    with pytest.raises(PermissionDenied, match=r"run\.services\.create"):
        cicd.call(
            "run.projects.locations.services.create",
            {"parent": LOC, "serviceId": "x"},
            serving_service(cp, "a"),
        )
    body = serving_service(cp, "a")
    body["template"]["serviceAccount"] = cp.team.session(ADMIN).email("serving")
    with pytest.raises(PermissionDenied, match=r"iam\.serviceAccounts\.actAs"):
        cicd.call("run.projects.locations.services.patch", name, body)


def test_declared_auxiliary_services_exist_from_the_start(no_engine_project: CicdProject) -> None:
    cp = no_engine_project
    admin = cp.team.api(ADMIN)
    svc = admin.call("run.projects.locations.services.get", {"name": f"{LOC}/services/hello"})
    image = svc["template"]["containers"][0]["image"]
    assert image == f"{cp.registry}/acme-ml/mlplane/hello"  # Artifact Registry's, locally
    assert svc["template"]["serviceAccount"].startswith("mlplane-aux-runtime@")
    assert "needs a Docker engine" in svc["terminalCondition"]["message"]
    inst = admin.call(
        "compute.instances.get",
        {"project": "acme-ml", "zone": "us-central1-a", "instance": "aux-hello"},
    )
    assert inst["status"] == "TERMINATED"
    items = {i["key"]: i["value"] for i in inst["metadata"]["items"]}
    # as `mlplane export` creates it on Google: the image by its Artifact Registry name (the
    # agent pulls it from its registry) and the startup script that runs it there
    assert items["mlplane-image"] == "us-central1-docker.pkg.dev/acme-ml/mlplane/hello"
    assert image.endswith(items["mlplane-image"].split("/", 1)[1])
    assert "docker run --rm --network host" in items["startup-script"]


def test_gcloud_describes_and_lists_services_and_revisions(no_engine_project: CicdProject) -> None:
    cp = no_engine_project
    run = gcloud_json(cp)

    described = run("run", "services", "describe", "echo")
    assert described["metadata"]["name"] == "echo"
    assert described["status"]["url"].startswith("http://127.0.0.1:")
    listed = {s["metadata"]["name"] for s in run("run", "services", "list")}
    assert {"echo", "hello"} <= listed
    revisions = run("run", "revisions", "list", "--service", "echo")
    names = {r["metadata"]["name"] for r in revisions}
    assert len(names) == 3 and all(n.startswith("echo-0000") for n in names)


def test_delete_stops_the_revisions_and_frees_the_url(no_engine_project: CicdProject) -> None:
    cp = no_engine_project
    admin = cp.team.api(ADMIN)
    svc = admin.call("run.projects.locations.services.get", {"name": f"{LOC}/services/echo"})
    done = wait_op(
        admin,
        admin.call("run.projects.locations.services.delete", {"name": f"{LOC}/services/echo"}),
    )
    assert done["response"]["name"].endswith("/services/echo")
    with pytest.raises(Exception, match="not found"):
        admin.call("run.projects.locations.services.get", {"name": f"{LOC}/services/echo"})
    deadline = time.monotonic() + 10
    while get_refused(svc["uri"]) is False:
        assert time.monotonic() < deadline, "the service's front end still answers"
        time.sleep(0.1)


def get_refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/m/healthz", timeout=2)
    except urllib.error.HTTPError:
        return False
    except OSError:
        return True
    return False
