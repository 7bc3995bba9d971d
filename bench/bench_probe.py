"""Probe timing: how soon a new replica takes traffic, against when it starts listening.

    python bench/bench_probe.py [--runs 10] [--interval 5]

Needs nothing beyond the project (no agent). Starts the data plane (its own process, as the
agent does) with one listener whose backend service has one endpoint gated by a health check
(`checkIntervalSec` = --interval, healthy threshold 1), then, --runs times: spawns a replica
process on a fresh port (a stdlib HTTP server that prints CLOCK_MONOTONIC once it listens),
configures the data plane to probe it, and hits the listener every 2 ms until the first 200.
Prints spawn->listening (the replica's own start, the anchor) and spawn->first 200 through the
load balancer, and their difference: the probe schedule's cost (formerly 0.2 s or 1.2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lb_bench_support import free_port, median, src_env

from mlplane.providers.local.dataplane.client import DataPlaneClient
from mlplane.providers.local.dataplane.health import CheckSpec
from mlplane.providers.local.dataplane.protocol import DataPlaneConfig, Listener, ProbeTarget
from mlplane.providers.local.lb import BackendService, Endpoint, UrlMap

HERE = Path(__file__).resolve().parent


def config(lb_port: int, replica: int, interval: float, owner: str) -> DataPlaneConfig:
    svc = BackendService("r", (Endpoint("127.0.0.1", replica, health_check="hc"),))
    check = CheckSpec("hc", "/", interval_sec=interval, timeout_sec=1, healthy_threshold=1)
    return DataPlaneConfig(
        listeners=(Listener("fr", lb_port, UrlMap("r"), (svc,)),),
        checks=(check,),
        targets=(ProbeTarget(replica, "hc", owner),),
    )


def first_200(port: int, deadline: float) -> float:
    request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    while time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(request)
            if s.recv(12).endswith(b"200"):
                return time.monotonic()
        time.sleep(0.002)
    raise TimeoutError("no 200 within the deadline")


async def one_run(
    dp: DataPlaneClient, lb_port: int, interval: float, i: int
) -> tuple[float, float]:
    port = free_port()
    env = {**src_env(), "PORT": str(port)}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "lb_bench_support.py"), "app-port"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        await dp.apply(config(lb_port, port, interval, f"r{i}:{proc.pid}"))
        loop = asyncio.get_running_loop()
        served = await loop.run_in_executor(None, first_200, lb_port, t0 + 15)
        assert proc.stdout is not None
        listening = float(proc.stdout.readline().split()[1])
        return listening - t0, served - t0
    finally:
        proc.terminate()
        proc.wait(5)


async def main_async(runs: int, interval: float) -> list[tuple[float, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as d:
        dp = DataPlaneClient(Path(d))
        await dp.ensure()
        try:
            lb_port = free_port()
            return [await one_run(dp, lb_port, interval, i) for i in range(runs)]
        finally:
            await dp.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--interval", type=float, default=5.0, help="checkIntervalSec")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", src_env()["PYTHONPATH"])
    results = asyncio.run(main_async(args.runs, args.interval))
    listen = [r[0] for r in results]
    served = [r[1] for r in results]
    gap = [s - li for li, s in results]
    print(f"{args.runs} replica starts, checkIntervalSec {args.interval:g}, healthy threshold 1")
    print(f"  spawn -> listening (the replica's own start)  median {median(listen) * 1000:7.1f} ms")
    print(f"  spawn -> first 200 through the data plane     median {median(served) * 1000:7.1f} ms")
    print(
        f"  first 200 - listening: median {median(gap) * 1000:.1f} ms, "
        f"min {min(gap) * 1000:.1f}, max {max(gap) * 1000:.1f} ms "
        f"(ratio of medians {median(served) / median(listen):.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
