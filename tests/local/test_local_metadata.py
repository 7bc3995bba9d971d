"""Workload identity like GCE's metadata server: each instance's own endpoint hands out its
service account's token, and the agent authorizes the workload's calls as that account."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mlplane.apis.credentials import StaticToken
from mlplane.apis.transport import Transport
from mlplane.errors import PermissionDenied
from mlplane.model.compute import (
    Instance,
    Metadata,
    MetadataItem,
    ServiceAccount,
)
from mlplane.model.workload import workload_metadata
from mlplane.providers.gcp.client import GoogleApis
from mlplane.providers.local.agent.metadata import project_number
from mlplane.providers.local.control import AgentHandle
from mlplane.providers.registry import ProviderSet
from tests.harness import Team
from tests.local.local_helpers import (
    BOOT_DISK,
    EXPERIMENTATION,
    PROJECT,
    REPLICA,
    SERVING_RUNTIME,
    TRAINING_ADHOC,
    ZONE,
    create,
    group,
    health_check,
    processes,
    providers_as,
    resources,
    template,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def alice(team: Team) -> ProviderSet:
    return providers_as(team, "alice@acme.com")


def instance(name: str, account: str, env: dict[str, str] | None = None) -> Instance:
    items = workload_metadata(REPLICA, env)
    return Instance(
        name=name,
        zone=ZONE,
        machine_type="e2-small",
        disks=(BOOT_DISK,),
        service_accounts=(ServiceAccount(email=account),),
        metadata=Metadata(items=tuple(MetadataItem(key=k, value=v) for k, v in items.items())),
    )


def metadata_port(team: Team, name: str) -> int:
    def port() -> int | None:
        views = [r for r in processes(team) if r.name == name and r.status == "RUNNING"]
        return views[0].metadata_port if views else None

    return wait_until(port, 10, f"metadata endpoint of {name}")


def md_get(port: int, path: str, flavor: bool = True) -> tuple[int, str, str | None]:
    headers = {"Metadata-Flavor": "Google"} if flavor else {}
    url = f"http://127.0.0.1:{port}/computeMetadata/v1/{path}"
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode(), resp.headers.get("Metadata-Flavor")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers.get("Metadata-Flavor")


def test_each_instance_gets_its_own_service_account_from_its_metadata_endpoint(
    alice: ProviderSet, agent: AgentHandle, team: Team
) -> None:
    create(alice, instance("train-md", TRAINING_ADHOC), instance("nb-md", EXPERIMENTATION))
    for name, account in (("train-md", TRAINING_ADHOC), ("nb-md", EXPERIMENTATION)):
        port = metadata_port(team, name)
        status, body, flavor = md_get(port, "instance/service-accounts/default/token")
        assert status == 200 and flavor == "Google"
        token = json.loads(body)
        assert token["token_type"] == "Bearer" and 3000 < token["expires_in"] <= 3600
        assert md_get(port, "instance/service-accounts/default/email")[1] == account
        assert md_get(port, "instance/name")[1] == name
        assert (
            md_get(port, "instance/zone")[1] == f"projects/{project_number(PROJECT)}/zones/{ZONE}"
        )
        assert md_get(port, "project/project-id")[1] == PROJECT
        assert md_get(port, "instance/attributes/mlplane-args")[0] == 200
        assert md_get(port, "instance/no-such-thing")[0] == 404
        # like GCE: no Metadata-Flavor header, no answer
        status, body, _ = md_get(port, "instance/service-accounts/default/token", flavor=False)
        assert status == 403 and "Metadata-Flavor" in body and "access_token" not in body
        # the token acts as that account at the agent's API (training-adhoc may get train-*)
        as_instance = GoogleApis(agent.endpoints, StaticToken(token["access_token"], name))
        if name == "train-md":
            params = {"project": PROJECT, "zone": ZONE, "instance": name}
            assert as_instance.call("compute.instances.get", params)["name"] == name
    ports = {metadata_port(team, n) for n in ("train-md", "nb-md")}
    assert len(ports) == 2


def self_deleting(name: str, account: str, result: Path) -> Instance:
    return instance(name, account, {"SELF_DELETE": "1", "RESULT_FILE": str(result)})


def read_result(path: Path) -> dict[str, object]:
    wait_until(path.exists, 10, f"{path.name} written by the workload")
    data: dict[str, object] = json.loads(path.read_text())
    return data


def test_a_training_vm_running_as_training_adhoc_may_delete_itself(
    alice: ProviderSet, agent: AgentHandle, team: Team, tmp_path: Path
) -> None:
    result = tmp_path / "train.json"
    create(alice, self_deleting("train-self", TRAINING_ADHOC, result))
    outcome = read_result(result)
    assert outcome["status"] == 200, outcome
    assert json.loads(str(outcome["body"]))["operationType"] == "delete"
    wait_until(lambda: ("instance", "train-self") not in resources(team), 10, "train-self deleted")
    assert not [r for r in processes(team) if r.name == "train-self"]
    log = agent.paths.log.read_text()
    assert (
        f"delete instance/train-self by serviceAccount:{TRAINING_ADHOC} (instance train-self)"
        in log
    )


def test_the_condition_on_train_names_stops_other_self_deletes(
    alice: ProviderSet, team: Team, tmp_path: Path
) -> None:
    result = tmp_path / "web.json"
    create(alice, self_deleting("nb-self", TRAINING_ADHOC, result))
    outcome = read_result(result)
    assert outcome["status"] == 403
    body = json.loads(str(outcome["body"]))["error"]["message"]
    assert body.startswith("Required 'compute.instances.delete' permission for ")
    assert f"DENY serviceAccount:{TRAINING_ADHOC} " in body
    assert "instance:nb-self" in body and "missing compute.instances.delete" in body
    running = [r for r in processes(team) if r.name == "nb-self"]
    assert running and running[0].status == "RUNNING"


def test_a_serving_replica_may_not_delete_instances(
    serving: ProviderSet, agent: AgentHandle, team: Team, tmp_path: Path
) -> None:
    result = tmp_path / "replica.json"
    hc = health_check("sd-hc")
    tmpl = template("sd-tmpl", SERVING_RUNTIME, {"SELF_DELETE": "1", "RESULT_FILE": str(result)})
    create(serving, hc, tmpl, group("sd-mig", tmpl, hc, size=1))
    outcome = read_result(result)
    assert outcome["status"] == 403
    explain = json.loads(str(outcome["body"]))["error"]["message"]
    assert f"DENY serviceAccount:{SERVING_RUNTIME} " in explain
    assert "missing compute.instances.delete" in explain
    replicas = [r for r in processes(team) if r.group == "sd-mig"]
    assert len(replicas) == 1 and replicas[0].restarts == 0 and replicas[0].pid
    pid = replicas[0].pid
    # an instance's token is the instance's account, whatever the request says of itself
    port = metadata_port(team, replicas[0].name)
    token = json.loads(md_get(port, "instance/service-accounts/default/token")[1])
    url = (
        f"{agent.base_url}/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances/{replicas[0].name}"
    )
    headers = {"Authorization": f"Bearer {token['access_token']}",
               "X-Mlplane-Principal": "user:alice@acme.com"}  # fmt: skip
    resp = Transport().request("DELETE", url, headers=headers)
    assert resp.status == 403 and SERVING_RUNTIME in resp.body["error"]["message"]
    as_replica = GoogleApis(agent.endpoints, StaticToken(token["access_token"], "replica"))
    with pytest.raises(PermissionDenied, match=r"compute\.instances\.delete"):
        as_replica.call(
            "compute.instances.delete",
            {"project": PROJECT, "zone": ZONE, "instance": replicas[0].name},
        )
    assert [r.pid for r in processes(team) if r.group == "sd-mig"] == [pid]
