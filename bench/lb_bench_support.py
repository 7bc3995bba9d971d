"""Shared pieces of the load-balancer benchmarks: replicas, nginx, wrk, CPU accounting.

Needs `wrk` and nginx on PATH (`apt-get install -y wrk nginx-light`); the benchmarks install
nothing themselves. Every process started here is stopped by its PID.

Run as a script it serves one replica (used by the benchmarks; prints its port):
    python bench/lb_bench_support.py static|app
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
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
TICKS = os.sysconf("SC_CLK_TCK")


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
            n = 0
            if i >= 0:
                eol = head.find(b"\r\n", i)
                n = int(head[i + 15 : eol if eol > 0 else None])
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
    if kind == "app-port":  # on $PORT, like a replica the agent starts; prints when it listens
        srv = _AppServer(("127.0.0.1", int(os.environ["PORT"])), _AppHandler)
        print(f"listening {time.monotonic()}", flush=True)
        srv.serve_forever()
        return
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


# -- processes ---------------------------------------------------------------------------------


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if not (shutil.which(t) or Path(f"/usr/sbin/{t}").exists())]
    if missing:
        sys.exit(f"error: {', '.join(missing)} not found: apt-get install -y wrk nginx-light")


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
    _, line = procs.start([sys.executable, __file__, kind])
    return int(line)


def src_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def start_lb(procs: Procs, ports: list[int], tmp: Path, loop: str = "auto") -> tuple[int, int]:
    """The standalone mlplane LB in front of `ports`: (its port, its pid)."""
    cfg = {
        "backendServices": [
            {
                "name": "bench-bes",
                "endpoints": [{"ipAddress": "127.0.0.1", "port": p} for p in ports],
            }
        ],
        "urlMap": {"name": "bench", "defaultService": "bench-bes"},
    }
    path = tmp / f"lb-{ports[0]}-{loop}.json"
    path.write_text(json.dumps(cfg))
    args = [sys.executable, "-m", "mlplane.providers.local.lb", "--port", "0"]
    pid, line = procs.start([*args, "--config", str(path), "--loop", loop], env=src_env())
    return int(line.rsplit(":", 1)[1]), pid


def start_dataplane(procs: Procs, ports: list[int], tmp: Path, proxy: str) -> tuple[int, int]:
    """The data-plane process (`--proxy python|haproxy`) configured over its control socket as
    the agent does, one listener in front of `ports`: (its port, the data plane's pid; with
    haproxy, its master and worker are that pid's descendants)."""
    import asyncio

    sys.path.insert(0, str(ROOT / "src"))
    from mlplane.providers.local.dataplane.client import DataPlaneClient
    from mlplane.providers.local.dataplane.protocol import DataPlaneConfig, Listener
    from mlplane.providers.local.lb import BackendService, Endpoint, UrlMap

    state = Path(tempfile.mkdtemp(prefix=f"dp-{proxy}-", dir=tmp))
    argv = [sys.executable, "-m", "mlplane.providers.local.dataplane", "--dir", str(state)]
    with open(state / "dataplane.log", "ab") as log:  # the data plane's and haproxy's notices
        pid, _ = procs.start([*argv, "--proxy", proxy], ready_line=False, env=src_env(), stderr=log)
    port = free_port()
    endpoints = tuple(Endpoint("127.0.0.1", p) for p in ports)
    service = BackendService("bench-bes", endpoints)
    listener = Listener("bench", port, UrlMap("bench-bes"), (service,))

    async def configure() -> dict[str, str]:
        client = DataPlaneClient(state, proxy)
        deadline = time.monotonic() + 15
        while not client.running():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {proxy} data plane did not start: see {state}")
            await asyncio.sleep(0.02)
        await client.ensure()
        errors = await client.apply(DataPlaneConfig(listeners=(listener,)))
        client.close()
        return errors

    errors = asyncio.run(configure())
    if errors.get("bench"):
        raise RuntimeError(f"the {proxy} data plane cannot listen: {errors['bench']}")
    wait_port(port)
    return port, pid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nginx(procs: Procs, ports: list[int], tmp: Path) -> tuple[int, int]:
    """nginx (one worker, keep-alive pool, least_conn, no access log): (port, master pid)."""
    port = free_port()
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
    pid, _ = procs.start(
        [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
        ready_line=False,
    )
    wait_port(port)
    return port, pid


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


# -- measuring ---------------------------------------------------------------------------------


def cpu_seconds(pid: int, with_children: bool = True) -> float:
    """CPU time (user + system) of `pid` and (by default) its direct children (nginx's
    workers)."""
    total = 0.0
    pids = [pid, *children(pid)] if with_children else [pid]
    for p in pids:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and all its descendants (a data plane, haproxy's master and worker)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu_seconds(p, with_children=False)
        todo += children(p)
    return total


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                out.append(int(d.name))
    return out


def write_lua(tmp: Path) -> Path:
    lua = tmp / "post.lua"
    lua.write_text(WRK_LUA)
    return lua


def wrk(port: int, conns: int, duration: float, lua: Path, path: str = "/v1/models/x:predict"):  # type: ignore[no-untyped-def]
    """(requests/s, p99 ms, requests, errors)"""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", "--latency", "-s", str(lua),
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert m, out
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(g) for g in sock.groups())
    return rps, p99, total, errors


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


if __name__ == "__main__":
    serve(sys.argv[1])
