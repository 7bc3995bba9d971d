"""Benchmark the local load balancer against nginx, side by side, in one run.

    python bench/bench_lb.py [--duration 4] [--connections 32] [--rounds 3] [--loops auto,asyncio]
                             [--haproxy]

Needs `wrk` and nginx (`apt-get install -y wrk nginx-light`); installs nothing itself. The LB's
default loop (`auto`) is uvloop (a dependency of mlplane), else the stdlib's; `--loops
uvloop,asyncio` measures both side by side. Starts two upstream replicas of each kind, then
measures with wrk (1 thread, small JSON POST, 127.0.0.1 only):
  (a) our LB vs nginx in front of 2 "app" replicas (stdlib ThreadingHTTPServer handlers that parse
      the JSON body and answer JSON: a Python app server of the slow kind),
  (b) our LB vs nginx in front of 2 "static" replicas (a raw asyncio.Protocol answering a fixed
      response: the proxy's own ceiling),
  (c) p99 latency at 1 connection: direct to a static replica vs through our LB vs through nginx.
With --haproxy (needs `apt-get install -y haproxy`) the data-plane process serving with a
supervised haproxy (`--proxy haproxy`, configured over its control socket as the agent does)
runs in the same rounds; its CPU is the data plane's and haproxy's (master + worker) together.
Each round runs every contender once, back to back (paired), so background load hits them
alike; figures are the median over rounds of each round's ratio. CPU per request is the proxy
process's user+system time (nginx: master + its one worker) over the requests wrk counted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from lb_bench_support import (
    BODY,
    Procs,
    cpu_seconds,
    median,
    require_tools,
    start_dataplane,
    start_lb,
    start_nginx,
    start_replica,
    tree_cpu_seconds,
    write_lua,
    wrk,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds; medians shown")
    parser.add_argument(
        "--loops", default="auto", help="LB event loops to run: auto,asyncio,uvloop"
    )
    parser.add_argument(
        "--haproxy", action="store_true", help="also the data plane serving with haproxy"
    )
    args = parser.parse_args()
    require_tools("wrk", "nginx", *(["haproxy"] if args.haproxy else []))
    loops = [x for x in args.loops.split(",") if x]
    contenders = [f"lb[{loop}]" for loop in loops] + (["haproxy"] if args.haproxy else [])
    procs = Procs()
    d, c = args.duration, args.connections
    rows: dict[str, list[tuple[float, float, float]]] = {}  # name -> [(rps, p99, us/req)]
    ratios: dict[str, list[float]] = {}
    single: dict[str, list[float]] = {}
    supervisor: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-lb-") as tmpdir:
            tmp = Path(tmpdir)
            lua = write_lua(tmp)
            backends = {
                "app": [start_replica(procs, "app") for _ in range(2)],
                "static": [start_replica(procs, "static") for _ in range(2)],
            }
            targets: dict[str, tuple[int, int]] = {}
            for kind, ports in backends.items():
                for loop in loops:
                    targets[f"lb[{loop}]-{kind}"] = start_lb(procs, ports, tmp, loop)
                if args.haproxy:
                    targets[f"haproxy-{kind}"] = start_dataplane(procs, ports, tmp, "haproxy")
                targets[f"nginx-{kind}"] = start_nginx(procs, ports, tmp)
            for port, _ in targets.values():
                wrk(port, 4, 1, lua)  # warm up pools and caches
            ones = {"direct-static": backends["static"][0]}
            ones[f"lb[{loops[0]}]-static"] = targets[f"lb[{loops[0]}]-static"][0]
            if args.haproxy:
                ones["haproxy-static"] = targets["haproxy-static"][0]
            ones["nginx-static"] = targets["nginx-static"][0]
            for _ in range(args.rounds):
                this: dict[str, tuple[float, float, float]] = {}
                for name, (port, pid) in targets.items():
                    cpu = tree_cpu_seconds if name.startswith("haproxy") else cpu_seconds
                    cpu0, own0 = cpu(pid), cpu_seconds(pid, with_children=False)
                    rps, p99, total, errors = wrk(port, c, d, lua)
                    us = (cpu(pid) - cpu0) / max(total, 1) * 1e6
                    if name.startswith("haproxy"):  # the supervising data plane's own share
                        own = cpu_seconds(pid, with_children=False) - own0
                        supervisor.setdefault(name, []).append(own / max(total, 1) * 1e6)
                    if errors:
                        print(f"  warning: {name}: {errors} errors")
                    this[name] = (rps, p99, us)
                    rows.setdefault(name, []).append(this[name])
                for kind in backends:
                    for who in contenders:
                        lb, ng = this[f"{who}-{kind}"], this[f"nginx-{kind}"]
                        ratios.setdefault(f"{who} {kind} rps", []).append(lb[0] / ng[0])
                        ratios.setdefault(f"{who} {kind} cpu", []).append(lb[2] / ng[2])
                for name, port in ones.items():
                    single.setdefault(name, []).append(wrk(port, 1, d, lua)[1])
    finally:
        procs.stop_all()
    print(f"\nwrk -t1 -c{c} -d{d:g}s, POST {len(BODY)}-byte JSON, 2 replicas each;", end="")
    print(f" medians of {args.rounds} paired rounds")
    print(f"{'path':<28}{'req/s':>10}{'p99 ms':>10}{'CPU us/req':>12}")
    for name, runs in rows.items():
        rps = median([r[0] for r in runs])
        p99 = median([r[1] for r in runs])
        us = median([r[2] for r in runs])
        print(f"{name:<28}{rps:>10.0f}{p99:>10.2f}{us:>12.1f}")
    for name, values in supervisor.items():
        print(f"  {name}: of its CPU, the supervising data plane's own {median(values):.2f} us/req")
    print(f"\nwrk -t1 -c1 -d{d:g}s: p99 ms at one connection")
    for name, p99s in single.items():
        print(f"  {name:<26}{median(p99s):>10.3f}")
    print("\nratios (contender / nginx), median of the rounds' ratios [min..max]")
    goals = {"app rps": ">= 0.95", "static rps": ">= 0.7", "app cpu": "<= 1.3", "static cpu": ""}
    for key, values in ratios.items():
        who, what = key.split(" ", 1)
        goal = goals.get(what, "")
        print(
            f"  {who:<12} {what:<11} {median(values):.2f}x "
            f"[{min(values):.2f}..{max(values):.2f}]" + (f"  (goal {goal})" if goal else "")
        )
    if args.haproxy:
        added = median(single["haproxy-static"]) - median(single["direct-static"])
        print(f"  p99 added by haproxy at 1 connection: {added:.3f} ms")
    lb_one = median(single[f"lb[{loops[0]}]-static"])
    print(
        f"  p99 added by the LB at 1 connection: {lb_one - median(single['direct-static']):.3f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
