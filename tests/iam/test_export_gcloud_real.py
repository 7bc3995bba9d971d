"""`mlplane export --format gcloud`, run by the real gcloud CLI against a loopback fake of Google's
APIs (tests/iam/gcloud_fake.py) on an empty project: it runs to the end, leaves the project as
the model says, and a second run sends no mutating request. The IAM-only script
(`mlplane iam export`) refuses an empty project, naming what must exist, and changes nothing on
the project the foundation made.

gcloud takes about a second a command: the first run is ~80 commands, so this is marked slow."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlplane.iam.export.foundation import Foundation, build_foundation
from mlplane.iam.export.gcloud import render_gcloud, role_description
from mlplane.iam.export.gcloud_foundation import render_foundation_gcloud
from mlplane.iam.loading import load_project
from mlplane.iam.synthesis import synthesize
from tests.conftest import PROJECT_TOML
from tests.iam.gcloud_fake import Request, Store, client_env, fake_google, gcloud_env
from tests.iam.tools import gcloud

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

HOSTILE = 'it\'s $(touch pwned) `id`; \\"quoted\\", with commas'
PROJECT = (
    PROJECT_TOML
    + """
[[auxiliary.instances]]
name = "aux-neo4j"
image = "neo4j:5"

[ci]
repository = "https://github.com/acme/ml"
approval = ["deploy"]

[[identities]]
id = "aux-runtime"
kind = "runtime"
process = "cicd"
title = "Aux"
"""
    + f'description = "{HOSTILE}"\nactions = []\n'
)
STALE_ROLE = "mlplane.serving.project"


@dataclass
class Run:
    code: int
    stderr: str
    requests: list[Request]

    @property
    def mutations(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests if r.mutating]


@dataclass
class World:
    foundation: Foundation
    store: Store
    base: str
    first: Run
    second: Run
    iam_on_empty: Run
    iam_after: Run
    cwd: Path


def _run(script: Path, env: dict[str, str], store: Store, cwd: Path) -> Run:
    before = len(store.requests)
    proc = subprocess.run(
        ["bash", str(script)], env=env, cwd=cwd, capture_output=True, text=True, timeout=800
    )
    return Run(proc.returncode, proc.stderr, list(store.requests[before:]))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    gcloud()
    tmp = tmp_path_factory.mktemp("gcloud")
    (tmp / "mlplane.toml").write_text(PROJECT)
    loaded = load_project(tmp / "mlplane.toml")
    plan = synthesize(loaded)
    foundation = build_foundation(loaded, plan)
    (tmp / "foundation.sh").write_text(render_foundation_gcloud(foundation))
    (tmp / "iam.sh").write_text(render_gcloud(plan))
    (tmp / "token").write_text("fake-token")
    (tmp / "config").mkdir()
    with fake_google() as (base, store):
        env = {**os.environ, **gcloud_env(base, str(tmp / "token"), str(tmp / "config"), "acme-ml")}
        empty = _run(tmp / "iam.sh", env, store, tmp)
        # A role of the plan was deleted earlier, with other permissions: soft-deleted, it
        # still holds its id (create fails) until it is undeleted.
        key = f"projects/acme-ml/roles/{STALE_ROLE}"
        store.resources[key] = {
            "name": key,
            "title": "old",
            "description": "old",
            "includedPermissions": ["compute.instances.delete"],
            "stage": "GA",
            "deleted": True,
            "etag": "BwX0",
        }
        first = _run(tmp / "foundation.sh", env, store, tmp)
        second = _run(tmp / "foundation.sh", env, store, tmp)
        after = _run(tmp / "iam.sh", env, store, tmp)
        yield World(foundation, store, base, first, second, empty, after, tmp)


def test_first_run_completes_on_an_empty_project(world: World) -> None:
    assert world.first.code == 0, world.first.stderr[-3000:]
    assert world.store.unknown == [], [f"{r.method} {r.path}" for r in world.store.unknown]
    assert "is ready" in world.first.stderr


def test_second_run_sends_no_mutating_request(world: World) -> None:
    assert world.second.code == 0, world.second.stderr[-3000:]
    assert world.second.mutations == []
    assert world.second.requests  # it did look


def _policy(store: Store, key: str) -> set[tuple[str, str, str]]:
    pol = store.policies.get(key, {"bindings": []})
    return {
        (b["role"], m, (b.get("condition") or {}).get("expression", ""))
        for b in pol["bindings"]
        for m in b["members"]
    }


def test_the_project_is_as_the_model_says(world: World) -> None:
    f, store = world.foundation, world.store
    plan = f.iam
    # APIs, accounts (hostile text arrives verbatim, nothing ran), roles with exact permissions
    enabled = {k.removeprefix("services/") for k in store.resources if k.startswith("services/")}
    assert set(f.apis) <= enabled and "models.endpoints.acme-ml.cloud.goog" in enabled
    accounts = {v["email"]: v for k, v in store.resources.items() if k.startswith("iam/")}
    assert set(accounts) == {sa.email for sa in plan.service_accounts}
    aux = accounts["mlplane-aux-runtime@acme-ml.iam.gserviceaccount.com"]
    assert aux["description"] == HOSTILE.replace('\\"', '"')
    assert not (world.cwd / "pwned").exists()
    for role in plan.roles:
        stored = store.resources[f"projects/acme-ml/roles/{role.role_id}"]
        assert sorted(stored["includedPermissions"]) == sorted(role.permissions), role.role_id
        assert stored["description"] == role_description(role) and not stored.get("deleted")
    # bindings: every (role, member, condition) of the plan, at its scope
    keys = {
        "project": "projects/acme-ml",
        "bucket": "storage/{}",
        "secret": "projects/acme-ml/secrets/{}",
        "repository": "projects/acme-ml/locations/us-central1/repositories/{}",
        "endpointsService": "managed/{}",
        "serviceAccount": "iam/{}",
    }
    for b in plan.bindings:
        have = _policy(store, keys[b.scope.kind].format(b.scope.name))
        expr = b.condition.expression if b.condition else ""
        for m in b.members:
            assert (b.role.name, m, expr) in have, (b.scope, b.role.name, m)
    # the load balancer, wired as frontend() describes it, and the health-check firewall
    lb = f.load_balancer
    fr = store.resources[f"compute/acme-ml/global/forwardingRules/{lb.forwarding_rule}"]
    assert fr["IPAddress"].endswith(f"/addresses/{lb.address}") or fr["IPAddress"] == "34.120.10.20"
    assert fr["target"].endswith(f"/targetHttpProxies/{lb.proxy}")
    assert fr["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    umap = store.resources[f"compute/acme-ml/global/urlMaps/{lb.url_map}"]
    assert umap["defaultService"].endswith(f"/backendServices/{lb.default_backend}")
    assert umap["hostRules"] == [{"hosts": ["*"], "pathMatcher": "models"}]
    fw = store.resources["compute/acme-ml/global/firewalls/mlplane-allow-health-checks"]
    assert sorted(fw["sourceRanges"]) == ["130.211.0.0/22", "35.191.0.0/16"]
    assert fw["targetTags"] == ["mlplane-serving"]
    assert fw["allowed"] == [{"IPProtocol": "tcp", "ports": ["8080"]}]
    # the Endpoints service's first config targets the reserved address
    [submitted] = [v for k, v in store.resources.items() if k.startswith("managed/models.")
                   and "/configs/" in k]  # fmt: skip
    doc = json.loads(base64.b64decode(submitted["files"][0]["fileContents"]))
    assert doc["x-google-endpoints"][0]["target"] == "34.120.10.20"
    # triggers run as their identities, the build fixed in them, approval where declared
    triggers = {
        v["name"]: v for k, v in store.resources.items() if "/locations/global/triggers/" in k
    }
    assert set(triggers) == {"train", "deploy", "undeploy", "build-images"}
    assert triggers["deploy"]["approvalConfig"] == {"approvalRequired": True}
    assert "approvalConfig" not in triggers["train"]
    assert triggers["build-images"]["github"]["push"] == {"branch": "^main$"}
    assert triggers["train"]["serviceAccount"].endswith(
        "/mlplane-training@acme-ml.iam.gserviceaccount.com"
    )
    for t in triggers.values():
        assert t["build"]["options"]["logging"] == "CLOUD_LOGGING_ONLY"
    inst = store.resources["compute/acme-ml/zones/us-central1-a/instances/aux-neo4j"]
    assert inst["serviceAccounts"][0]["email"] == aux["email"]


def test_a_soft_deleted_role_is_undeleted_and_corrected(world: World) -> None:
    paths = [r.path for r in world.first.requests if r.mutating]
    assert f"/v1/projects/acme-ml/roles/{STALE_ROLE}:undelete" in paths
    assert any(p == f"/v1/projects/acme-ml/roles/{STALE_ROLE}" for p in paths)  # the PATCH


def test_iam_only_script_names_what_must_exist_first(world: World) -> None:
    empty = world.iam_on_empty
    assert empty.code == 1 and empty.mutations == []
    for what in (
        "bucket:acme-ml-mlplane-artifacts",
        "secret:graph-readonly",
        "repository:mlplane",
        "endpointsService:models.endpoints.acme-ml.cloud.goog",
    ):
        assert what in empty.stderr
    assert "mlplane export" in empty.stderr
    # on the project the foundation made, the IAM-only script finds nothing to do
    assert world.iam_after.code == 0, world.iam_after.stderr[-2000:]
    assert world.iam_after.mutations == []


def test_up_on_google_cloud_finds_the_project_the_script_made_ready(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlplane up`'s checks (provider gcp) read back, through Google's APIs, what gcloud made:
    every check passes, for a team member, and nothing is changed."""
    from mlplane.workflows.preflight import check_project
    from mlplane.workflows.session import Session

    for key, value in client_env(world.base, str(world.cwd / "token")).items():
        monkeypatch.setenv(key, value)
    world.store.tokens["fake-token"] = "alice@acme.com"
    before = len(world.store.requests)
    try:
        report = check_project(Session.open(world.cwd / "mlplane.toml"))
    finally:
        world.store.tokens.clear()
    assert report.caller == "user:alice@acme.com"
    assert report.ok, [c for c in report.checks if c.status != "ok"]
    assert {c.status for c in report.checks} == {"ok"}
    assert not any(r.mutating for r in world.store.requests[before:])
