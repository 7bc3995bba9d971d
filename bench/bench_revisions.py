"""Flat to hundreds of revisions: throughput on one route and the agent's idle CPU, at 1 revision
and at N (default 100), one replica each, nginx in front of the same replica as the anchor.

    python bench/bench_revisions.py [--revisions 100] [--duration 4] [--rounds 3]
                                    [--data-plane python|haproxy]

Needs `wrk` and nginx (`apt-get install -y wrk nginx-light`); installs nothing itself. Starts a
local agent in a temporary project; every revision is a real bundle (template, MIG, autoscaler
min=max=1, health check, backend service, its route in the URL map) whose replica is a stdlib
HTTP server (`lb_bench_support.py app-port`). Load: wrk (1 thread, 32 connections, small JSON
POST) on revision 0's route, through the data plane and through nginx (one worker, keep-alive
pool) to the same replica, in paired rounds. Idle CPU: the agent's and the data plane's own
user+system time over 10 s with no load (not the replicas', which are the agent's children).
The resources are created through the agent's Compute Engine API as the `serving` service
account (as the `deploy` trigger's build creates them): the project's admin, signed in in a
config directory of the bench's own, impersonates it. Everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from lb_bench_support import (
    Procs,
    cpu_seconds,
    free_port,
    median,
    require_tools,
    start_nginx,
    write_lua,
    wrk,
)

from mlplane.model.compute import (
    RevisionBundle,
    RevisionSettings,
    UrlMap,
    frontend,
    revision_bundle,
    route_to,
)
from mlplane.model.workload import workload_metadata
from mlplane.providers.base import wait_for_operation
from mlplane.providers.local.dataplane.files import DataPlaneFiles, read_info
from mlplane.providers.local.paths import AgentPaths
from mlplane.providers.registry import ProviderSet
from mlplane.workflows import compose
from mlplane.workflows.project_file import write_project_file
from mlplane.workflows.session import Session

HERE = Path(__file__).resolve().parent
PROJECT = "bench-ml"
ADMIN = "admin@acme.com"
RUNTIME_SA = f"mlplane-serving-runtime@{PROJECT}.iam.gserviceaccount.com"


def run(providers: ProviderSet, verb: str, target: Any, **kw: Any) -> None:
    provider = providers.for_kind(target.KIND if hasattr(target, "KIND") else target.kind)
    op = getattr(provider, verb)(target, request_id=uuid.uuid4().hex, **kw)
    wait_for_operation(op, f"{verb} {target}", 60, poller=provider)


def revision(i: int) -> RevisionBundle:
    settings = RevisionSettings(
        zone="us-central1-a",
        service_account=RUNTIME_SA,
        metadata=workload_metadata((sys.executable, str(HERE / "lb_bench_support.py"), "app-port")),
        min_replicas=1,
        max_replicas=1,
    )
    return revision_bundle(f"svc{i}", "r1", settings)


def deploy(providers: ProviderSet, i: int) -> None:
    bundle = revision(i)
    for spec in bundle.resources:
        run(providers, "create", spec)
    provider = providers.for_kind("urlMap")
    live = provider.get(
        UrlMap(name="mlplane-urlmap", default_service="global/backendServices/x").key
    )
    change = route_to(f"svc{i}", [(bundle, 1000)])
    run(providers, "update", live.spec.with_changes((change,)), fingerprint=live.fingerprint)


def healthy_replicas(session: Session) -> dict[str, int]:
    """group -> port of the healthy replicas, from the agent's process view."""
    replicas = session.platform.processes(compose.access_token(session.api))
    return {r.group: r.port for r in replicas if r.group and r.health == "HEALTHY" and r.port}


def wait_healthy(session: Session, n: int, timeout: float = 300) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ports = healthy_replicas(session)
        if len(ports) >= n:
            return ports
        time.sleep(0.2)
    raise TimeoutError(f"{n} healthy replicas not reached")


def idle_cpu(pids: list[int], seconds: float = 10.0) -> list[float]:
    """% of a core each process used (itself only: the agent's children are the replicas)."""
    before = [cpu_seconds(p, with_children=False) for p in pids]
    time.sleep(seconds)
    after = [cpu_seconds(p, with_children=False) for p in pids]
    return [(a - b) / seconds * 100 for a, b in zip(after, before, strict=True)]


def measure(
    lb_port: int, nginx_port: int, rounds: int, duration: float, lua: Path
) -> tuple[float, float]:
    ours, theirs = [], []
    path = "/v1/models/svc0/predict"
    for _ in range(rounds):
        ours.append(wrk(lb_port, 32, duration, lua, path)[0])
        theirs.append(wrk(nginx_port, 32, duration, lua, path)[0])
    return median(ours), median(theirs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--revisions", type=int, default=100)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hold", type=float, default=0, help="seconds to wait at N (to profile)")
    parser.add_argument(
        "--data-plane", choices=("python", "haproxy"), default="python",
        help="[local] data_plane of the bench's project (haproxy: apt-get install -y haproxy)",
    )  # fmt: skip
    args = parser.parse_args()
    require_tools("wrk", "nginx", *(["haproxy"] if args.data_plane == "haproxy" else []))
    procs = Procs()
    with tempfile.TemporaryDirectory(prefix="bench-revisions-") as d:
        root = Path(d)
        os.environ["MLPLANE_CONFIG_DIR"] = str(root / "config")
        for var in ("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", "GOOGLE_APPLICATION_CREDENTIALS"):
            os.environ.pop(var, None)
        project = root / "mlplane.toml"
        write_project_file(project, project_id=PROJECT, members=["user:alice@acme.com"])
        text = project.read_text()
        project.write_text(text.replace("[team]\n", f'[team]\nadmins = ["user:{ADMIN}"]\n', 1))
        if args.data_plane != "python":
            local = f'\n[local]\ndata_plane = "{args.data_plane}"\n'
            project.write_text(project.read_text() + local)
        agent = compose.agent_up(project).agent
        try:
            compose.login(ADMIN)
            compose.activate(ADMIN)
            session = Session.open(project, impersonate="serving")
            providers = compose.provider_set(session, session.api)
            front = frontend()
            lb_port = free_port()
            rule = front.forwarding_rule.model_copy(update={"port_range": str(lb_port)})
            bundle = revision(0)
            for spec in (front.default_backend, *bundle.resources, front.url_map, front.proxy):
                run(providers, "create", spec)
            run(providers, "create", rule)
            provider = providers.for_kind("urlMap")
            live = provider.get(front.url_map.key)
            change = route_to("svc0", [(bundle, 1000)])
            run(
                providers, "update", live.spec.with_changes((change,)), fingerprint=live.fingerprint
            )
            replica = wait_healthy(session, 1)[bundle.instance_group_manager.name]
            lua = write_lua(root)
            nginx_port, _ = start_nginx(procs, [replica], root)
            dp = read_info(DataPlaneFiles(AgentPaths.for_project(project).root))
            assert dp is not None
            haproxy = (AgentPaths.for_project(project).root / "haproxy.json").exists()
            assert haproxy == (args.data_plane == "haproxy"), "the data plane is not the one asked"
            print(f"data plane: {args.data_plane} (pid {dp.pid})", flush=True)
            wrk(lb_port, 4, 1, lua, "/v1/models/svc0/predict")
            one = measure(lb_port, nginx_port, args.rounds, args.duration, lua)
            idle_one = idle_cpu([agent.info.pid, dp.pid])
            t0 = time.monotonic()
            for i in range(1, args.revisions):
                deploy(providers, i)
            wait_healthy(session, args.revisions)
            deployed = time.monotonic() - t0
            time.sleep(2)
            if args.hold:
                print(f"holding {args.hold:g} s: agent pid {agent.info.pid}, data plane {dp.pid}")
                time.sleep(args.hold)
            idle_n = idle_cpu([agent.info.pid, dp.pid])
            many = measure(lb_port, nginx_port, args.rounds, args.duration, lua)
        finally:
            procs.stop_all()
            compose.agent_down(project)
    n = args.revisions
    print(f"\nwrk -t1 -c32 -d{args.duration:g}s on one route; medians of {args.rounds} rounds")
    print(f"{'':<28}{'mlplane req/s':>14}{'nginx req/s':>13}{'ratio':>8}")
    for label, (ours, theirs) in (("1 revision", one), (f"{n} revisions", many)):
        print(f"{label:<28}{ours:>14.0f}{theirs:>13.0f}{ours / theirs:>8.2f}")
    print(f"\nthroughput at {n} revisions / at 1: {many[0] / one[0]:.2f}x (goal >= 0.9x)")
    print(f"  (nginx's own at {n} / at 1: {many[1] / one[1]:.2f}x: the machine's drift)")
    print(f"deployed {n - 1} more revisions in {deployed:.0f} s")
    print("idle CPU, % of a core (10 s, no load):")
    print(f"  agent:      {idle_one[0]:5.1f} at 1 revision, {idle_n[0]:5.1f} at {n} (goal <= 5)")
    print(f"  data plane: {idle_one[1]:5.1f} at 1 revision, {idle_n[1]:5.1f} at {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
