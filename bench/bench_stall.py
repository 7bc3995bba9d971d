"""A stalled control plane under load: the agent stopped (SIGSTOP) for 2 s while wrk drives a
deployed revision through the load balancer, beside its anchor: the same load, in the same run,
with the agent running. Prints requests/s of each window and their ratio, the failed requests
(non-2xx and socket errors) and the replicas recreated (goal, issue 11: zero and zero).

    python bench/bench_stall.py [--stall 2] [--rounds 3] [--data-plane python|haproxy]

Needs `wrk` (`apt-get install -y wrk`); installs nothing itself. Starts a local agent in a
temporary project (its own config directory), deploys the example model through the `deploy`
trigger with two replicas, and stops everything it started at the end. Each round: wrk for
`--stall` + 2 s with the agent running (anchor), then the same with the agent stopped from
0.5 s in for `--stall` s; after each stalled window, 2.5 s for the agent to catch up (its
health polls and autohealing decisions) before the replicas are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_project import isolate, signed_in, write_project
from lb_bench_support import median, require_tools, wrk

from mlplane.examples.sentiment.train import train
from mlplane.workflows import compose
from mlplane.workflows.serving import DeployRequest, deploy
from mlplane.workflows.session import Session

LUA = (
    'wrk.method = "POST"\n'
    """wrk.body = '{"instances": [{"positive_words": 3, "negative_words": 1, "negations": 0, """
    """"exclamations": 1, "length": 12}]}'\n"""
    'wrk.headers["Content-Type"] = "application/json"\n'
)


def replicas(session: Session, group: str) -> dict[str, tuple[int | None, int]]:
    """name -> (pid, restarts) of the group's replicas, from the agent's process view."""
    views = session.platform.processes(compose.access_token(session.api))
    return {v.name: (v.pid, v.restarts) for v in views if v.group == group}


def stalled(
    agent_pid: int, port: int, path: str, lua: Path, stall: float
) -> tuple[float, float, int, int]:
    """wrk for stall + 2 s while the agent is stopped from 0.5 s in for `stall` s."""

    def stop_and_go() -> None:
        time.sleep(0.5)
        os.kill(agent_pid, signal.SIGSTOP)
        try:
            time.sleep(stall)
        finally:
            os.kill(agent_pid, signal.SIGCONT)

    pauser = threading.Thread(target=stop_and_go)
    pauser.start()
    try:
        rps, p99, total, errors = wrk(port, 16, stall + 2.0, lua, path)
        return float(rps), float(p99), int(total), int(errors)
    finally:
        pauser.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stall", type=float, default=2.0, help="seconds the agent is stopped")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-plane", choices=("python", "haproxy"), default="python")
    args = parser.parse_args()
    require_tools("wrk", *(["haproxy"] if args.data_plane == "haproxy" else []))
    quiet = lambda *_: None  # noqa: E731
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        isolate(root)
        project = write_project(root / "mlplane.toml", args.data_plane)
        artifact = Path(train(root / "model", progress=quiet))
        lua = root / "post.lua"
        lua.write_text(LUA)
        with signed_in(project) as session:
            req = DeployRequest("stall", "r1", artifact, min_replicas=2, max_replicas=2)
            result = deploy(session, req, quiet)
            agent = json.loads((root / ".mlplane" / "agent" / "agent.json").read_text())["pid"]
            base = result.service_url.split("/v1/")[0]
            port = int(base.rsplit(":", 1)[1])
            path = "/v1/models/stall/predict"
            group = "stall-r1-mig"
            deadline = time.monotonic() + 30
            while len(replicas(session, group)) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            warm = wrk(port, 16, 1.0, lua, path)  # warm-up, unmeasured
            if warm[3]:
                sys.exit(f"error: {warm[3]} of {warm[2]} warm-up requests failed: check the body")
            anchor, ours, failed, recreated = [], [], 0, 0
            for _ in range(args.rounds):
                anchor.append(wrk(port, 16, args.stall + 2.0, lua, path)[0])
                before = replicas(session, group)
                rps, _, _, errors = stalled(agent, port, path, lua, args.stall)
                time.sleep(2.5)
                after = replicas(session, group)
                ours.append(rps)
                failed += errors
                recreated += sum(1 for name, seen in before.items() if after.get(name) != seen)
    a, o = median(anchor), median(ours)
    print(f"data plane {args.data_plane}; median of {args.rounds} rounds, 16 connections")
    print(f"  agent running:                 {a:9.0f} requests/s (anchor)")
    print(f"  agent stopped {args.stall:g} s of {args.stall + 2:g}:   {o:9.0f} requests/s  "
          f"{o / a:5.2f}x anchor")  # fmt: skip
    print(f"  failed requests while stopped: {failed} (goal: 0)")
    print(f"  replicas recreated:            {recreated} (goal: 0)")
    return 0 if failed == 0 and recreated == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
