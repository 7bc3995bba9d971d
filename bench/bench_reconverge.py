"""Kill to first 200: `kill -9` of the agent while a revision serves, then `mlplane up` at once,
until the service URL answers 200 again (the new agent restores its records, re-creates the
group's replica, re-pushes the forwarding rule to the adopted data plane), beside its anchor:
a plain `mlplane up` of an agent with nothing to restore (launch until its API answers).

Usage: python bench/bench_reconverge.py [RUNS]. Starts agents in temporary projects (each with
its own config directory) and stops them, and everything they started, at the end.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench_project import USER, isolate, write_project

from mlplane.examples.sentiment.train import train
from mlplane.providers.local.control import find_agent, start_agent, stop_agent
from mlplane.workflows import compose
from mlplane.workflows.quickstart import SAMPLE
from mlplane.workflows.serving import DeployRequest, deploy
from mlplane.workflows.session import Session

SETTLE_SEC = 1.0  # between measurements: the previous one's processes finish starting
BODY = json.dumps({"instances": [SAMPLE]}).encode()


def answers(url: str) -> bool:
    req = urllib.request.Request(url, BODY, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def plain_up(project: Path) -> float:
    start = time.monotonic()
    start_agent(project)
    took = time.monotonic() - start
    stop_agent(project)
    return took


def kill_to_200(project: Path, url: str) -> tuple[float, float]:
    """(kill to `up` returned, kill to the first 200)."""
    handle = find_agent(project)
    assert handle is not None
    os.kill(handle.info.pid, signal.SIGKILL)
    killed = time.monotonic()
    while Path(f"/proc/{handle.info.pid}").exists() and _state(handle.info.pid) not in "ZX":
        time.sleep(0.001)
    start_agent(project)
    up = time.monotonic() - killed
    while not answers(url):
        if time.monotonic() - killed > 60:
            raise SystemExit("no 200 within 60 s of the kill")
        time.sleep(0.002)
    return up, time.monotonic() - killed


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X"
    return stat[stat.rindex(")") + 2]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    quiet = lambda *_: None  # noqa: E731
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        isolate(root)
        empty = write_project(root / "empty" / "mlplane.toml")
        project = write_project(root / "serving" / "mlplane.toml")
        artifact = Path(train(root / "model", progress=quiet))
        compose.agent_up(project)
        try:
            compose.login(USER)
            compose.activate(USER)
            result = deploy(Session.open(project), DeployRequest("bench", "r1", artifact), quiet)
            url = result.service_url + "predict"
            assert answers(url)
            anchor, ups, ours = [], [], []
            for _ in range(runs):  # interleaved, so that machine load hits both alike
                time.sleep(SETTLE_SEC)
                anchor.append(plain_up(empty))
                time.sleep(SETTLE_SEC)
                up, first = kill_to_200(project, url)
                ups.append(up)
                ours.append(first)
        finally:
            stop_agent(project)
            stop_agent(empty)
    a, u, o = (statistics.median(x) for x in (anchor, ups, ours))
    print(f"plain `up` (nothing to restore), median of {runs}: {a * 1000:.0f} ms")
    print(f"kill -9 to `up` returned (restored), median:       {u * 1000:.0f} ms")
    print(f"kill -9 to first 200 on the service URL, median:   {o * 1000:.0f} ms")
    print(f"ratio kill-to-first-200 / plain up: {o / a:.2f}x  (restore in `up`: {u / a:.2f}x)")


if __name__ == "__main__":
    main()
