"""Slow clients: a legitimate client's latency while 1,000 connections hold half-sent request
heads, and the load balancer's descriptors afterwards; nginx in the same run as the anchor.

    python bench/bench_halfopen.py [--held 1000] [--requests 2000]

Needs nginx (`apt-get install -y nginx-light`); installs nothing itself. Starts one static
replica, the standalone mlplane load balancer and nginx in front of it (127.0.0.1 only). For
each proxy: p99 of --requests sequential keep-alive GETs alone, then with --held connections
open that sent half a request head; then closes them and counts the proxy's open descriptors
(/proc/PID/fd) against its baseline. Goal: p99 under 50 ms with the held connections, and the
descriptors back at the baseline.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from lb_bench_support import Procs, children, require_tools, start_lb, start_nginx, start_replica

GET = b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n"


def latencies(port: int, n: int) -> list[float]:
    """Sequential keep-alive GETs (a new connection when the proxy closes one: nginx does
    after 1000 requests); the time of each, connecting included when it had to."""
    out: list[float] = []
    s: socket.socket | None = None
    while len(out) < n:
        t0 = time.perf_counter()
        if s is None:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(GET)
        buf = b""
        while b"\r\n\r\n" not in buf or not buf.endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                s.close()
                s = None
                break
            buf += chunk
        else:
            out.append(time.perf_counter() - t0)
    if s is not None:
        s.close()
    return out


def p99(values: list[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * 0.99))] * 1000


def fds(pid: int) -> int:
    return sum(len(os.listdir(f"/proc/{p}/fd")) for p in (pid, *children(pid)))


def run(port: int, pid: int, held: int, n: int) -> tuple[float, float, int, int, int]:
    latencies(port, 200)  # warm up
    alone = p99(latencies(port, n))
    baseline = fds(pid)
    conns = []
    for _ in range(held):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n")
        conns.append(c)
    time.sleep(0.5)
    during_fds = fds(pid)
    loaded = p99(latencies(port, n))
    for c in conns:
        c.close()
    deadline = time.monotonic() + 10
    while fds(pid) > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    return alone, loaded, baseline, during_fds, fds(pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    require_tools("nginx")
    procs = Procs()
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-halfopen-") as d:
            tmp = Path(d)
            replica = start_replica(procs, "static")
            lb_port, lb_pid = start_lb(procs, [replica], tmp)
            nginx_port, nginx_pid = start_nginx(procs, [replica], tmp)
            results["mlplane LB"] = run(lb_port, lb_pid, args.held, args.requests)
            results["nginx"] = run(nginx_port, nginx_pid, args.held, args.requests)
    finally:
        procs.stop_all()
    print(
        f"{args.requests} sequential keep-alive GETs; {args.held} connections holding half a head"
    )
    print(f"{'proxy':<12}{'p99 alone':>11}{'p99 held':>10}{'fds base':>10}{'held':>7}{'after':>7}")
    for name, (alone, loaded, base, during, after) in results.items():
        print(f"{name:<12}{alone:>9.2f}ms{loaded:>8.2f}ms{base:>10}{during:>7}{after:>7}")
    ours = results["mlplane LB"]
    ok = ours[1] < 50 and ours[4] <= ours[2]
    print(f"goal (p99 < 50 ms held, descriptors back at baseline): {'met' if ok else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
