"""The serving lifecycle for real: the local agent, replica processes, the load balancer."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest

from mlplane.errors import ConfigError, PermissionDenied
from mlplane.workflows.ci import list_builds
from mlplane.workflows.quickstart import predict
from mlplane.workflows.serving import (
    DeployRequest,
    deploy,
    deploy_direct,
    frontend_url,
    port_free,
    recorded_revisions,
    undeploy,
)
from mlplane.workflows.serving_status import list_revisions
from mlplane.workflows.status import project_status
from tests.harness import ADMIN
from tests.local.local_helpers import processes, resources
from tests.workflows.conftest import ALICE, LocalProject, alive

QUIET = lambda *_: None  # noqa: E731
REVISION_KINDS = (
    "healthCheck",
    "instanceTemplate",
    "instanceGroupManager",
    "autoscaler",
    "backendService",
)


def agent_names(lp: LocalProject) -> dict[str, set[str]]:
    """Every resource the agent holds, listed through Google's APIs by the project's admin."""
    out: dict[str, set[str]] = {}
    for kind, name in resources(lp.team):
        out.setdefault(kind, set()).add(name)
    return out


def replicas(lp: LocalProject, service: str, rev: str) -> list[tuple[int, int]]:
    views = [v for v in processes(lp.team) if v.group == f"{service}-{rev}-mig"]
    return [(v.pid, v.port) for v in views if v.pid and v.port]


def test_deploy_serves_and_undeploy_frees_everything(local_project: LocalProject) -> None:
    lp = local_project
    s = lp.session
    result = deploy(s, DeployRequest("alpha", "r1", lp.v1), QUIET)
    assert result.seconds_to_ready < 10
    assert predict(result.revision_url + "predict")[0] == 200
    assert predict(result.service_url + "predict")[0] == 200
    names = agent_names(lp)
    for kind, name in zip(
        REVISION_KINDS,
        ("alpha-r1-hc", "alpha-r1-tmpl", "alpha-r1-mig", "alpha-r1-as", "alpha-r1-bes"),
        strict=True,
    ):
        assert name in names[kind]
    with lp.team.acting(ALICE):  # the view asks the agent with the caller's credentials
        [row] = [r for r in list_revisions(s.project_file) if r.service == "alpha"]
    assert row.weight == 100 and all(x.health == "HEALTHY" for x in row.replicas)
    build = list_builds(s)[-1]
    assert (build.trigger, build.status, build.invoker) == ("deploy", "SUCCESS", "alice@acme.com")
    assert build.runs_as.startswith("mlplane-serving@")
    assert build.id == result.build.id
    procs = replicas(lp, "alpha", "r1")
    assert procs
    with lp.team.acting(ALICE):  # the status view: state rows and the agent's processes
        status = project_status(lp.root / "mlplane.toml")
    assert "local agent running" in status.summary
    rows = {(r.kind, r.name): r for r in status.resources}
    mig = rows[("instanceGroupManager", "alpha-r1-mig")]
    assert (mig.lifecycle, mig.detail) == ("active", f"{len(procs)}/{len(procs)} healthy")
    assert rows[("urlMap", "mlplane-urlmap")].lifecycle == "passive"
    assert {v.pid for v in status.processes} >= {pid for pid, _ in procs}
    # `mlplane status` and `serve list` take their start-up paths: no spec classes, rich or SDKs
    for command, expect in ((["status"], "alpha-r1-mig"), (["serve", "list"], "alpha")):
        code = (
            "import sys; from mlplane.cli.main import main; "
            f"rc = main(['-f', {str(lp.root / 'mlplane.toml')!r}, *{command!r}]); "
            "bad = [m for m in sys.modules if m.startswith(('pydantic', 'google', 'rich'))]; "
            "print('BAD', bad) if bad else None; sys.exit(rc or (1 if bad else 0))"
        )
        shown = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **lp.team.env(ALICE)},
            capture_output=True,
            text=True,
        )
        assert shown.returncode == 0 and expect in shown.stdout, shown.stdout + shown.stderr
        assert f"{len(procs)}/{len(procs)}" in shown.stdout

    undeploy(s, "alpha", "r1", QUIET)
    names = agent_names(lp)
    for kind in REVISION_KINDS:
        assert not any(n.startswith("alpha-r1") for n in names.get(kind, ())), kind
    for kind in ("urlMap", "targetHttpProxy", "forwardingRule", "endpointsService"):
        assert names.get(kind), f"passive {kind} must stay"
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid, _ in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid, _ in procs), "replica processes left behind"
    assert all(port_free(port) for _, port in procs), "replica ports still bound"
    assert predict(result.revision_url + "predict")[0] in (404, 503)
    assert not recorded_revisions(s, "alpha")


@dataclass
class Load:
    """Bounded steady load on loopback: one client thread, keep-alive off, until stopped."""

    url: str
    method: str = "POST"
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, max_seconds: float = 30.0) -> None:
        deadline = time.monotonic() + max_seconds
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                if self.method == "POST":
                    status, body = predict(self.url)
                else:
                    with urllib.request.urlopen(self.url, timeout=5) as resp:
                        status, body = resp.status, ""
            except (urllib.error.URLError, OSError) as exc:
                status, body = -1, str(exc)
            if status == 200:
                self.ok += 1
            else:
                self.failures.append(f"{status} {body[:200]}")

    def __enter__(self) -> Load:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=35)


def test_rollout_under_steady_load_fails_no_request(local_project: LocalProject) -> None:
    lp = local_project
    s = lp.session
    first = deploy(s, DeployRequest("beta", "r1", lp.v1), QUIET)
    with Load(first.service_url + "predict") as load:
        time.sleep(0.3)
        deploy(s, DeployRequest("beta", "r2", lp.v2), QUIET)  # the route switches to r2
        time.sleep(0.3)
        undeploy(s, "beta", "r1", QUIET)
        time.sleep(0.3)
    assert load.failures == [], load.failures[:5]
    assert load.ok > 20
    undeploy(s, "beta", "r2", QUIET)


def test_kill_9_of_a_replica_under_load(local_project: LocalProject) -> None:
    import os
    import signal

    lp = local_project
    s = lp.session
    result = deploy(s, DeployRequest("gamma", "r1", lp.v1, min_replicas=2, max_replicas=2), QUIET)
    deadline = time.monotonic() + 15
    while len(replicas(lp, "gamma", "r1")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    before = replicas(lp, "gamma", "r1")
    assert len(before) == 2
    victim = before[0][0]
    with Load(result.service_url + "healthz", method="GET") as load:
        time.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        replaced_after = None
        while time.monotonic() - killed_at < 10:
            now = replicas(lp, "gamma", "r1")
            healthy = [
                v
                for v in processes(lp.team)
                if v.group == "gamma-r1-mig" and v.health == "HEALTHY" and v.pid != victim
            ]
            if len(healthy) == 2 and victim not in [p for p, _ in now]:
                replaced_after = time.monotonic() - killed_at
                break
            time.sleep(0.05)
        time.sleep(0.3)
    assert load.failures == [], load.failures[:5]
    assert replaced_after is not None and replaced_after <= 2 * 1.0 + 0.5, replaced_after
    undeploy(s, "gamma", "r1", QUIET)


def test_two_concurrent_deploys_both_end_with_their_routes(local_project: LocalProject) -> None:
    lp = local_project
    results: dict[str, object] = {}

    def run(service: str) -> None:
        try:
            session = lp.fresh_session()
            results[service] = deploy(session, DeployRequest(service, "r1", lp.v1), QUIET)
        except Exception as exc:  # reported below
            results[service] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in ("delta", "epsilon")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    base = frontend_url(lp.session)
    for service in ("delta", "epsilon"):
        assert not isinstance(results[service], Exception), results[service]
        assert predict(f"{base}/v1/models/{service}/predict")[0] == 200
        assert predict(f"{base}/v1/revisions/{service}-r1/predict")[0] == 200
    for service in ("delta", "epsilon"):
        undeploy(lp.session, service, "r1", QUIET)


def test_a_user_cannot_create_the_stack_directly(local_project: LocalProject) -> None:
    lp = local_project
    before = agent_names(lp)
    with pytest.raises(PermissionDenied) as info:
        deploy_direct(lp.session, DeployRequest("zeta", "r1", lp.v1))
    assert "trigger 'deploy'" in (info.value.decision.sanctioned_path or "")  # type: ignore[attr-defined]
    assert agent_names(lp) == before


@pytest.mark.parametrize(
    ("req", "needle"),
    [
        (DeployRequest("Bad_Name", "r1", __import__("pathlib").Path("x")), "service name"),
        (DeployRequest("eta", "R1!", __import__("pathlib").Path("x")), "revision"),
        (
            DeployRequest("eta", "r1", __import__("pathlib").Path("/nonexistent/model")),
            "/nonexistent/model",
        ),
        (DeployRequest("eta", "r1", __import__("pathlib").Path("x"), traffic=0), "percentage"),
        (
            DeployRequest("eta", "r1", __import__("pathlib").Path("x"), 3, 1),
            "--min/--max: 3/1: need 0 <= --min <= --max",
        ),
    ],
)
def test_bad_input_creates_nothing(
    local_project: LocalProject, req: DeployRequest, needle: str
) -> None:
    lp = local_project
    before = agent_names(lp)
    builds = len(list_builds(lp.session))
    with pytest.raises(Exception) as info:
        deploy(lp.session, req, QUIET)
    assert needle in str(info.value)
    assert "pydantic" not in str(info.value) and "\n" not in str(info.value)
    assert agent_names(lp) == before
    assert len(list_builds(lp.session)) == builds


def test_undeploy_of_unknown_revision(local_project: LocalProject) -> None:
    with pytest.raises(ConfigError) as info:
        undeploy(local_project.session, "nope", "r9", QUIET)
    assert "no revision 'r9'" in str(info.value)


def test_canary_splits_traffic_and_the_status_shows_the_routes(local_project: LocalProject) -> None:
    import json

    lp = local_project
    s = lp.session
    deploy(s, DeployRequest("theta", "r1", lp.v1), QUIET)
    result = deploy(s, DeployRequest("theta", "r2", lp.v2, traffic=10), QUIET)
    weights = {r.revision: r.weight for r in list_revisions(s.project_file) if r.service == "theta"}
    assert weights == {"r1": 90, "r2": 10}
    live = lp.team.api(ADMIN).call(
        "compute.urlMaps.get", {"project": "acme-ml", "urlMap": "mlplane-urlmap"}
    )
    [rule] = [r for r in live["pathMatchers"][0]["routeRules"]
              if r["matchRules"][0]["prefixMatch"] == "/v1/models/theta/"]  # fmt: skip
    split = {w["backendService"].rsplit("/", 1)[-1]: w["weight"]
             for w in rule["routeAction"]["weightedBackendServices"]}  # fmt: skip
    assert split == {"theta-r1-bes": 90, "theta-r2-bes": 10}
    versions: dict[str, int] = {}
    for _ in range(300):
        status, body = predict(result.service_url + "predict")
        assert status == 200
        version = json.loads(body)["model"]["version"]
        versions[version] = versions.get(version, 0) + 1
    assert len(versions) == 2, versions
    canary = versions[max(versions, key=lambda v: v == "1.0.11")]
    assert 5 <= canary <= 70, versions  # 10% of 300 = 30, generous bounds for a random split
    undeploy(s, "theta", "r1", QUIET)
    undeploy(s, "theta", "r2", QUIET)
