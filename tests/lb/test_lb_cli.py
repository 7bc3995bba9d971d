"""`python -m mlplane.providers.local.lb`: serves a JSON config, drains and exits on SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from lb_support import ReplicaServer

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run_lb(config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlplane.providers.local.lb",
            "--port",
            "0",
            "--config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_standalone_serves_and_drains_on_sigterm(
    replicas: Callable[[str], ReplicaServer], tmp_path: Path
) -> None:
    a = replicas("a")
    config = tmp_path / "lb.json"
    config.write_text(
        json.dumps(
            {
                "backendServices": [
                    {"name": "a-bes", "endpoints": [{"ipAddress": "127.0.0.1", "port": a.port}]}
                ],
                "urlMap": {"defaultService": "projects/p/global/backendServices/a-bes"},
            }
        )
    )
    proc = run_lb(config)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/hello")
        assert json.loads(c.getresponse().read())["replica"] == "a"

        slow: list[int] = []

        def slow_request() -> None:
            s = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            s.request("GET", "/sleep?s=0.7")
            slow.append(s.getresponse().status)

        t = threading.Thread(target=slow_request)
        t.start()
        deadline = time.monotonic() + 5
        while a.count("/sleep") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        t.join(10)
        assert slow == [200]  # the in-flight request finished
        assert proc.wait(10) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_standalone_rejects_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"urlMap": {"defaultService": "ghost"}}))
    proc = run_lb(config)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "unknown backend service 'ghost'" in err
