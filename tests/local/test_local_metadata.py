"""Workload identity like GCE's metadata server: each instance's own endpoint hands out its
service account's token, and the agent authorizes the workload's calls as that account."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mlplane.model.compute import (
    Instance,
    Metadata,
    MetadataItem,
    ResourceKey,
    ServiceAccount,
)
from mlplane.providers.errors import InvalidRequest
from mlplane.providers.local.agent.metadata import project_number
from mlplane.providers.local.client import AgentClient, local_providers
from mlplane.providers.local.control import AgentHandle
from mlplane.providers.local.runtime import runtime_metadata
from mlplane.providers.registry import ProviderSet
from tests.local.local_helpers import (
    ALICE,
    EXPERIMENTATION,
    PROJECT,
    REPLICA,
    SERVING_RUNTIME,
    TRAINING_ADHOC,
    ZONE,
    create,
    group,
    health_check,
    template,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def alice(agent: AgentHandle) -> ProviderSet:
    return local_providers(agent.paths.project_file, ALICE, kinds=["instance"])


def instance(name: str, account: str, env: dict[str, str] | None = None) -> Instance:
    items = runtime_metadata(REPLICA, env)
    return Instance(
        name=name,
        zone=ZONE,
        machine_type="e2-small",
        service_accounts=(ServiceAccount(email=account),),
        metadata=Metadata(items=tuple(MetadataItem(key=k, value=v) for k, v in items.items())),
    )


def metadata_port(client: AgentClient, name: str) -> int:
    def port() -> int | None:
        views = [r for r in client.status().replicas if r.name == name and r.status == "RUNNING"]
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
    alice: ProviderSet, agent: AgentHandle
) -> None:
    create(alice, instance("train-md", TRAINING_ADHOC), instance("nb-md", EXPERIMENTATION))
    client = agent.client()
    for name, account in (("train-md", TRAINING_ADHOC), ("nb-md", EXPERIMENTATION)):
        port = metadata_port(client, name)
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
        assert md_get(port, "instance/attributes/mlplane-command")[0] == 200
        assert md_get(port, "instance/no-such-thing")[0] == 404
        # like GCE: no Metadata-Flavor header, no answer
        status, body, _ = md_get(port, "instance/service-accounts/default/token", flavor=False)
        assert status == 403 and "Metadata-Flavor" in body and "access_token" not in body
        # the token acts as that account at the agent's API
        as_instance = AgentClient(client.base_url, token["access_token"])
        if name == "train-md":
            assert as_instance.get(ResourceKey("instance", name)).name == name
    ports = {metadata_port(client, n) for n in ("train-md", "nb-md")}
    assert len(ports) == 2


def self_deleting(name: str, account: str, result: Path) -> Instance:
    return instance(name, account, {"SELF_DELETE": "1", "RESULT_FILE": str(result)})


def read_result(path: Path) -> dict[str, object]:
    wait_until(path.exists, 10, f"{path.name} written by the workload")
    data: dict[str, object] = json.loads(path.read_text())
    return data


def test_a_training_vm_running_as_training_adhoc_may_delete_itself(
    alice: ProviderSet, agent: AgentHandle, tmp_path: Path
) -> None:
    result = tmp_path / "train.json"
    create(alice, self_deleting("train-self", TRAINING_ADHOC, result))
    outcome = read_result(result)
    assert outcome["status"] == 200, outcome
    assert json.loads(str(outcome["body"]))["operationType"] == "delete"
    client = agent.client()
    wait_until(
        lambda: not [r for r in client.status().resources if r.name == "train-self"],
        10,
        "train-self deleted",
    )
    assert not [r for r in client.status().replicas if r.name == "train-self"]
    log = agent.paths.log.read_text()
    assert (
        f"delete instance/train-self by serviceAccount:{TRAINING_ADHOC} (instance train-self)"
        in log
    )


def test_the_condition_on_train_names_stops_other_self_deletes(
    alice: ProviderSet, agent: AgentHandle, tmp_path: Path
) -> None:
    result = tmp_path / "web.json"
    create(alice, self_deleting("nb-self", TRAINING_ADHOC, result))
    outcome = read_result(result)
    assert outcome["status"] == 403
    body = json.loads(str(outcome["body"]))["error"]["message"]
    assert body.startswith(f"DENY serviceAccount:{TRAINING_ADHOC} ")
    assert "instance:nb-self" in body and "missing compute.instances.delete" in body
    running = [r for r in agent.client().status().replicas if r.name == "nb-self"]
    assert running and running[0].status == "RUNNING"


def test_a_serving_replica_may_not_delete_instances(
    serving: ProviderSet, agent: AgentHandle, tmp_path: Path
) -> None:
    result = tmp_path / "replica.json"
    hc = health_check("sd-hc")
    tmpl = template("sd-tmpl", SERVING_RUNTIME, {"SELF_DELETE": "1", "RESULT_FILE": str(result)})
    create(serving, hc, tmpl, group("sd-mig", tmpl, hc, size=1))
    outcome = read_result(result)
    assert outcome["status"] == 403
    explain = json.loads(str(outcome["body"]))["error"]["message"]
    assert explain.startswith(f"DENY serviceAccount:{SERVING_RUNTIME} ")
    assert "missing compute.instances.delete" in explain
    replicas = [r for r in agent.client().status().replicas if r.group == "sd-mig"]
    assert len(replicas) == 1 and replicas[0].restarts == 0 and replicas[0].pid
    pid = replicas[0].pid
    # a workload cannot claim to be someone else
    port = metadata_port(agent.client(), replicas[0].name)
    token = json.loads(md_get(port, "instance/service-accounts/default/token")[1])
    forged = AgentClient(agent.client().base_url, token["access_token"], ALICE)
    with pytest.raises(InvalidRequest, match="instance token acts as its service account"):
        forged.delete(ResourceKey("instance", replicas[0].name), "forged")
    assert [r.pid for r in agent.client().status().replicas if r.group == "sd-mig"] == [pid]
