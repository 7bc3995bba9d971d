"""Process lifecycle: fail fast without binding, start fast, drain in-flight work on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from serving_support import (
    POSITIVE_INSTANCE,
    Reader,
    call,
    connect,
    free_port,
    request_bytes,
    server_cmd,
    server_env,
    start_server,
    wait_for,
)

from mlplane.serving.artifact import MANIFEST


def run_server(artifact: Path | str, *args: str, timeout: float = 10.0) -> Any:
    return subprocess.run(
        server_cmd(artifact, *args),
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=timeout,
    )


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_missing_artifact_exits_non_zero_naming_it_and_binds_nothing(tmp_path: Path) -> None:
    port = free_port()
    proc = run_server(tmp_path / "no-such-model", "--port", str(port))
    assert proc.returncode != 0
    assert f"model artifact {tmp_path / 'no-such-model'}: does not exist" in proc.stderr
    assert "listening" not in proc.stdout and "Traceback" not in proc.stderr
    assert port_is_free(port)


def test_corrupt_artifact_exits_non_zero_naming_the_file(
    sentiment_artifact: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in sentiment_artifact.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    text = (broken / MANIFEST).read_text()
    (broken / MANIFEST).write_text(text.replace('"bias": -', '"bias": +'))
    port = free_port()
    proc = run_server(broken, "--port", str(port))
    assert proc.returncode != 0 and f"{broken / MANIFEST}: corrupt" in proc.stderr
    assert port_is_free(port)


def test_port_in_use_is_a_clear_error(sentiment_artifact: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_server(sentiment_artifact, "--port", str(port))
    assert proc.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr


def test_port_defaults_to_the_port_environment_variable(sentiment_artifact: Path) -> None:
    port = free_port()
    srv = start_server(sentiment_artifact, env=server_env(PORT=str(port)))
    try:
        assert srv.port == port and call(port, "GET", "/healthz").status == 200
    finally:
        assert srv.terminate() == 0


def healthy(port: int, proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, f"the server exited with {proc.returncode} before it was healthy"
    try:
        return call(port, "GET", "/healthz").status == 200
    except OSError:
        return False


def test_a_started_server_becomes_healthy_and_stops_cleanly(sentiment_artifact: Path) -> None:
    """Functional only: a spawned server answers 200 on /healthz, then exits 0 on SIGTERM. How
    fast it starts is measured by bench/bench_serving.py (beside `python -c pass`), not here."""
    port = free_port()
    proc = subprocess.Popen(
        server_cmd(sentiment_artifact, "--port", str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=server_env(),
    )
    try:
        wait_for(lambda: healthy(port, proc), timeout=60, what="the first 200 on /healthz")
    finally:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_server_imports_no_control_plane_or_heavy_modules() -> None:
    code = (
        "import sys, mlplane.serving.__main__, mlplane.serving.server;"
        "heavy = ('pydantic', 'rich', 'click', 'mlplane.model', 'mlplane.iam', 'mlplane.cli',"
        " 'mlplane.engine', 'mlplane.providers', 'numpy');"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=server_env(), timeout=10
    )
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_sigterm_lets_a_request_still_arriving_finish(sentiment_artifact: Path) -> None:
    srv = start_server(sentiment_artifact)
    body = json.dumps({"instances": [POSITIVE_INSTANCE]}).encode()
    with connect(srv.port) as sock, connect(srv.port) as idle:
        reader = Reader(sock)
        sock.sendall(request_bytes("POST", "/predict", body)[: -len(body) // 2])
        time.sleep(0.2)  # the server has the head and half the body
        srv.proc.send_signal(signal.SIGTERM)
        assert Reader(idle).closed(), "an idle keep-alive connection is closed at once"
        time.sleep(0.2)
        assert srv.proc.poll() is None, "exited with a request in flight"
        with pytest.raises(ConnectionRefusedError):
            connect(srv.port)  # no new connections while draining
        sock.sendall(body[-len(body) // 2 :])
        r = reader.response()
        assert r.status == 200 and r.json()["predictions"][0]["label"] == "positive"
        assert r.headers["connection"] == "close" and reader.closed()
    assert srv.proc.wait(10) == 0


def test_sigterm_waits_for_a_running_prediction_and_health_reports_draining(
    make_artifact: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "predicting"
    artifact = make_artifact(predictor="serving_support:SlowEcho", delay=0.8, marker=str(marker))
    srv = start_server(artifact)
    result: dict[str, Any] = {}

    def slow_call() -> None:
        result["r"] = call(srv.port, "POST", "/predict", {"instances": [{"x": 1}]})

    caller = threading.Thread(target=slow_call)
    with connect(srv.port) as probe:
        probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # head not finished yet
        caller.start()
        wait_for(marker.exists, what="the prediction to start")
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        probe.sendall(b"\r\n")
        health = Reader(probe).response()
        assert health.status == 503 and health.headers["connection"] == "close"
    caller.join(10)
    assert result["r"].status == 200 and result["r"].json()["predictions"] == [{"echo": {"x": 1}}]
    assert srv.proc.wait(10) == 0


def test_drain_is_bounded_by_the_drain_timeout(make_artifact: Any, tmp_path: Path) -> None:
    marker = tmp_path / "predicting"
    artifact = make_artifact(predictor="serving_support:SlowEcho", delay=30, marker=str(marker))
    srv = start_server(artifact, "--drain-timeout", "0.3")
    with connect(srv.port) as sock:
        sock.sendall(request_bytes("POST", "/predict", b'{"instances": [1]}'))
        wait_for(marker.exists, what="the prediction to start")
        started = time.perf_counter()
        assert srv.terminate(timeout=5) == 0
        assert time.perf_counter() - started < 3, "a stuck prediction held the process"
        assert Reader(sock).closed()
