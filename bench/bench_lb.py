"""Benchmark the local load balancer against nginx, side by side, in one run.

    python bench/bench_lb.py [--duration 5] [--connections 32]

Installs `wrk` and `nginx-light` with apt-get when absent. Starts two upstream replicas of each
kind, then measures with wrk (1 thread, small JSON POST, 127.0.0.1 only):
  (a) our LB vs nginx in front of 2 "app" replicas (stdlib ThreadingHTTPServer handlers that parse
      the JSON body and answer JSON: a Python app server of the slow kind),
  (b) our LB vs nginx in front of 2 "static" replicas (a raw asyncio.Protocol answering a fixed
      response: the proxy's own ceiling),
  (c) p99 latency at 1 connection: direct to a static replica vs through our LB vs through nginx.
nginx runs one worker process (our LB is one Python process), keepalive pools, access log off.
Every process it starts is stopped by PID.

`--serve static|app` runs one replica (used by the benchmark itself; prints its port).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BODY = b'{"text": "the movie was great", "top_k": 3}'
WRK_LUA = (
    'wrk.method = "POST"\n'
    "wrk.body = '" + BODY.decode() + "'\n"
    'wrk.headers["Content-Type"] = "application/json"\n'
)


# -- replicas ----------------------------------------------------------------------------------


class _StaticProtocol(asyncio.Protocol):
    RESPONSE = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n"
        b'{"label": "pos", "p": 0.97}'
    )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            i = head.find(b"content-length:")
            n = (
                int(head[i + 15 : head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
                if i >= 0
                else 0
            )
            if len(buf) < end + 4 + n:
                break
            buf = buf[end + 4 + n :]
            out.append(self.RESPONSE)
        self.buf = buf
        if out:
            self.transport.write(b"".join(out))


class _AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        doc = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        words = str(doc.get("text", "")).split()
        body = json.dumps({"label": "pos", "words": len(words), "top_k": doc.get("top_k")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST


class _AppServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default 5 drops SYNs under 32+ connections

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # peers closing pooled connections at the end of a run


def serve(kind: str) -> None:
    if kind == "app":
        srv = _AppServer(("127.0.0.1", 0), _AppHandler)
        print(srv.server_address[1], flush=True)
        srv.serve_forever()
        return

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_StaticProtocol, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


# -- orchestration -----------------------------------------------------------------------------


def ensure_tools() -> None:
    if shutil.which("wrk") and (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        return
    cmd = ["apt-get", "install", "-y", "wrk", "nginx-light"]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], check=True, capture_output=True)
        subprocess.run(cmd, check=True, capture_output=True)


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, args: list[str], *, ready_line: bool = True, **kw: Any) -> tuple[int, str]:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, **kw)
        self.procs.append(proc)
        line = proc.stdout.readline().strip() if ready_line and proc.stdout else ""
        return proc.pid, line

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)


def start_replica(procs: Procs, kind: str) -> int:
    _, line = procs.start([sys.executable, __file__, "--serve", kind])
    return int(line)


def start_lb(procs: Procs, ports: list[int], tmp: Path) -> int:
    cfg = {
        "backendServices": [
            {
                "name": "bench-bes",
                "endpoints": [{"ipAddress": "127.0.0.1", "port": p} for p in ports],
            }
        ],
        "urlMap": {"name": "bench", "defaultService": "bench-bes"},
    }
    path = tmp / f"lb-{ports[0]}.json"
    path.write_text(json.dumps(cfg))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = [
        sys.executable,
        "-m",
        "mlplane.providers.local.lb",
        "--port",
        "0",
        "--config",
        str(path),
    ]
    _, line = procs.start(args, env=env)
    return int(line.rsplit(":", 1)[1])


def start_nginx(procs: Procs, ports: list[int], tmp: Path) -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    prefix = tmp / f"nginx-{ports[0]}"
    (prefix / "logs").mkdir(parents=True)
    servers = "".join(f"server 127.0.0.1:{p};" for p in ports)
    conf = f"""
worker_processes 1;
error_log {prefix}/logs/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}; proxy_temp_path {prefix}; fastcgi_temp_path {prefix};
  uwsgi_temp_path {prefix}; scgi_temp_path {prefix};
  upstream app {{ least_conn; {servers} keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
    }}
  }}
}}
"""
    (prefix / "nginx.conf").write_text(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    procs.start(
        [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
        ready_line=False,
    )
    wait_port(port)
    return port


def wait_port(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def wrk(port: int, conns: int, duration: float, lua: Path) -> tuple[float, float]:
    """(requests/s, p99 ms)"""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", "--latency", "-s", str(lua),
         f"http://127.0.0.1:{port}/v1/models/sentiment:predict"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert m, out
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    if "Non-2xx" in out or "Socket errors" in out:
        print(f"  warning: wrk reported errors on port {port}:\n{out}")
    return rps, p99


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """Highest throughput and lowest p99 over the rounds."""
    return max(r[0] for r in runs), min(r[1] for r in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", choices=("static", "app"))
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved; best round shown")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    ensure_tools()
    procs = Procs()
    d, c = args.duration, args.connections
    try:
        with tempfile.TemporaryDirectory(prefix="bench-lb-") as tmpdir:
            tmp = Path(tmpdir)
            lua = tmp / "post.lua"
            lua.write_text(WRK_LUA)
            app = [start_replica(procs, "app") for _ in range(2)]
            static = [start_replica(procs, "static") for _ in range(2)]
            targets = {
                "lb-app": start_lb(procs, app, tmp),
                "nginx-app": start_nginx(procs, app, tmp),
                "lb-static": start_lb(procs, static, tmp),
                "nginx-static": start_nginx(procs, static, tmp),
            }
            for port in targets.values():
                wrk(port, 4, 1, lua)  # warm up pools and caches
            # Rounds interleave the contenders, so background load hits both alike; each
            # figure is the best round (the one least disturbed by other processes).
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
            single = {"direct-static": static[0], "lb-static": targets["lb-static"]}
            single["nginx-static"] = targets["nginx-static"]
            one_runs: dict[str, list[tuple[float, float]]] = {name: [] for name in single}
            for _ in range(args.rounds):
                for name, port in targets.items():
                    runs[name].append(wrk(port, c, d, lua))
                for name, port in single.items():
                    one_runs[name].append(wrk(port, 1, d, lua))
            res = {name: best(r) for name, r in runs.items()}
            one = {name: best(r) for name, r in one_runs.items()}
    finally:
        procs.stop_all()
    print(f"\nwrk -t1 -c{c} -d{d:g}s, POST {len(BODY)}-byte JSON, 2 replicas each", end="")
    print(f", best of {args.rounds} interleaved rounds")
    print(f"{'path':<36}{'req/s':>10}{'p99 ms':>10}")
    labels = {
        "lb-app": "(a) mlplane LB -> 2 app replicas",
        "nginx-app": "(a) nginx    -> 2 app replicas",
        "lb-static": "(b) mlplane LB -> 2 static replicas",
        "nginx-static": "(b) nginx    -> 2 static replicas",
    }
    for key, label in labels.items():
        print(f"{label:<36}{res[key][0]:>10.0f}{res[key][1]:>10.2f}")
    print(f"\nwrk -t1 -c1 -d{d:g}s (latency at one connection)")
    for key, (rps, p99) in one.items():
        print(f"{'(c) ' + key:<36}{rps:>10.0f}{p99:>10.3f}")
    ratio_a = res["lb-app"][0] / res["nginx-app"][0]
    ratio_b = res["lb-static"][0] / res["nginx-static"][0]
    added = one["lb-static"][1] - one["direct-static"][1]
    print()
    print(f"(a) LB/nginx throughput, app replicas:    {ratio_a:.2f}x  (goal >= 0.9x)")
    print(f"(b) LB/nginx throughput, static replicas: {ratio_b:.2f}x  (goal >= 0.5x)")
    print(f"(c) p99 added by the LB at 1 connection:  {added:.3f} ms (goal <= 1 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
