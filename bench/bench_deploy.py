"""Deploy to first 200: `serve deploy` (trigger, IAM checks, engine, agent, MIG, health check,
load balancer) until the revision answers through the load balancer, beside its anchor: the same
model server started directly, until it answers. Goal: deploy <= 2 s.

Usage: python bench/bench_deploy.py [RUNS]. Starts a local agent in a temporary project and
stops it (and everything it started) at the end.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mlplane.examples.sentiment.train import train
from mlplane.providers.local.control import start_agent, stop_agent
from mlplane.workflows.project_file import write_project_file
from mlplane.workflows.serving import DeployRequest, deploy, undeploy
from mlplane.workflows.session import Session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def direct_start(artifact: Path) -> float:
    port = free_port()
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlplane.serving", "--artifact", str(artifact), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - start
            except OSError:
                time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        project = root / "mlplane.toml"
        write_project_file(project, project_id="bench-ml", members=["user:alice@acme.com"])
        artifact = train(root / "model", progress=lambda *_: None)
        start_agent(project)
        try:
            session = Session.open(project)
            user = session.user()
            anchor = [direct_start(Path(artifact)) for _ in range(runs)]
            ours = []
            for i in range(runs):
                req = DeployRequest("bench", f"r{i}", Path(artifact))
                ours.append(deploy(session, req, user, lambda *_: None).seconds_to_ready)
                undeploy(session, "bench", f"r{i}", user, lambda *_: None)
        finally:
            stop_agent(project)
    a, o = statistics.median(anchor), statistics.median(ours)
    print(f"median of {runs} runs")
    print(f"  model server started directly, to first 200     {a:6.3f} s (anchor)")
    print(f"  serve deploy (trigger, engine, agent, LB) to 200 {o:6.3f} s  {o / a:5.2f}x anchor")
    print(f"  goal <= 2 s: {'met' if o <= 2 else 'missed'}")


if __name__ == "__main__":
    main()
