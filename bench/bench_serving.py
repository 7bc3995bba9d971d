"""Model server: start-up and loopback throughput, beside a stdlib ThreadingHTTPServer replica.

Usage: python bench/bench_serving.py [--runs N] [--seconds S] [--connections C]

Trains the example sentiment model into a temporary directory, then measures
- start-up: spawning `python -m mlplane.serving` to its first 200 on /healthz (median of N),
  beside `python -c pass`;
- throughput: POST /predict (one instance, keep-alive) for S seconds at C connections with `wrk`
  (1 thread) when installed, else a Python load loop; for mlplane.serving and for a
  `http.server.ThreadingHTTPServer` replica (`disable_nagle_algorithm = True`, HTTP/1.1) that
  answers with the same `ModelApp.predict`. Every process started here is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
INSTANCE = {
    "positive_words": 3,
    "negative_words": 0,
    "negations": 0,
    "exclamations": 1,
    "length": 12,
}
BODY = json.dumps({"instances": [INSTANCE]}).encode()
PATH = "/v1/models/sentiment/predict"


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_status(port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
        return int(s.recv(64).split(b" ")[1])


def wait_healthy(port: int, proc: subprocess.Popen[bytes], started: float) -> float:
    while True:
        try:
            if get_status(port, "/healthz") == 200:
                return (time.perf_counter() - started) * 1e3
        except OSError:
            time.sleep(0.001)
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def spawn(cmd: list[str], port: int) -> tuple[subprocess.Popen[bytes], float]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env(), cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        return proc, wait_healthy(port, proc, started)
    except BaseException:
        stop(proc)
        raise


def startup(artifact: Path, runs: int) -> tuple[float, float]:
    base = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        base.append((time.perf_counter() - t) * 1e3)
    times = []
    for _ in range(runs):
        port = free_port()
        proc, ms = spawn(server_cmd(artifact, port), port)
        stop(proc)
        times.append(ms)
    return statistics.median(base), statistics.median(times)


def server_cmd(artifact: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlplane.serving",
        "--artifact",
        str(artifact),
        "--port",
        str(port),
    ]


def wrk(port: int, seconds: int, connections: int) -> tuple[float, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(BODY.decode())}\n')
        f.write('wrk.headers["Content-Type"] = "application/json"\n')
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name,
             f"http://127.0.0.1:{port}{PATH}"],
            capture_output=True, text=True, check=True, timeout=seconds + 30,
        ).stdout  # fmt: skip
    finally:
        os.unlink(f.name)
    if "Non-2xx" in out or "Socket errors" in out:
        print(out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out)
    return rps, p99.group(1) if p99 else "?"


def python_load(port: int, seconds: int, connections: int) -> tuple[float, str]:
    request = f"POST {PATH} HTTP/1.1\r\nHost: b\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
    request += BODY
    deadline = time.perf_counter() + seconds
    counts = [0] * connections
    lat: list[float] = []

    def client(i: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                s.sendall(request)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += s.recv(65536)
                head, rest = data.split(b"\r\n\r\n", 1)
                n = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
                while len(rest) < n:
                    rest += s.recv(65536)
                lat.append(time.perf_counter() - t)
                counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat.sort()
    return sum(counts) / seconds, f"{lat[int(len(lat) * 0.99)] * 1e3:.2f}ms"


def stdlib_replica(artifact: str, port: int) -> None:
    """The alternative we measured against: stdlib threads, same app code."""
    from mlplane.serving.app import build_app

    app = build_app(artifact)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(200, app.health_body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._send(*app.predict(body))

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # wrk resets its connections at the end

    server = Server(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--stdlib-replica":
        stdlib_replica(sys.argv[2], int(sys.argv[3]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=11)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=32)
    args = p.parse_args()
    sys.path[:0] = [str(REPO / "src"), str(REPO)]
    from mlplane.examples.sentiment.train import train

    with tempfile.TemporaryDirectory() as d:
        artifact = train(Path(d) / "sentiment", progress=lambda line: None)
        base, ms = startup(artifact, args.runs)
        print(f"start-up to first 200 /healthz: {ms:.0f} ms median of {args.runs} "
              f"(python -c pass: {base:.0f} ms)")  # fmt: skip
        load = wrk if shutil.which("wrk") else python_load
        tool = "wrk -t1" if load is wrk else "python load loop"
        print(
            f"throughput ({tool}, {args.connections} connections, {args.seconds} s, POST {PATH}):"
        )
        replica = [sys.executable, __file__, "--stdlib-replica", str(artifact)]
        for label, make in (
            ("mlplane.serving (asyncio)", lambda port: server_cmd(artifact, port)),
            ("stdlib ThreadingHTTPServer", lambda port: [*replica, str(port)]),
        ):
            port = free_port()
            proc, _ = spawn(make(port), port)
            try:
                rps, p99 = load(port, args.seconds, args.connections)
            finally:
                stop(proc)
            print(f"  {label:28s} {rps:8.0f} req/s   p99 {p99}")


if __name__ == "__main__":
    main()
