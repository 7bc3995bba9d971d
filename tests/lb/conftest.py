"""Fixtures of the load balancer tests: replicas, and an LB on a loop in a background thread."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lb_support import LoopThread, ReplicaServer, start_replica

from mlplane.providers.local.lb import BackendService, LoadBalancer, ProxySettings, UrlMap

HERE = Path(__file__).parent
SRC = str(HERE.resolve().parents[1] / "src")


@pytest.fixture
def replicas() -> Iterator[Callable[[str], ReplicaServer]]:
    started: list[ReplicaServer] = []

    def make(name: str) -> ReplicaServer:
        srv = start_replica(name)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.release.set()
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


class LbHandle:
    def __init__(self, lt: LoopThread, lb: LoadBalancer, port: int) -> None:
        self.lt = lt
        self.lb = lb
        self.port = port

    def call(self, fn: Callable[[], object]) -> object:
        return self.lt.call(fn)


@pytest.fixture
def make_lb(loop_thread: LoopThread) -> Iterator[Callable[..., LbHandle]]:
    made: list[LoadBalancer] = []

    def make(
        url_map: UrlMap, services: list[BackendService], settings: ProxySettings | None = None
    ) -> LbHandle:
        async def build() -> tuple[LoadBalancer, int]:
            lb = LoadBalancer(url_map, services, settings=settings)
            return lb, await lb.start()

        lb, port = loop_thread.run(build())
        made.append(lb)
        return LbHandle(loop_thread, lb, port)

    yield make
    for lb in made:
        loop_thread.run(lb.stop(drain_timeout_sec=1.0))


@pytest.fixture
def replica_process() -> Iterator[Callable[[str], tuple[subprocess.Popen[str], int]]]:
    procs: list[subprocess.Popen[str]] = []

    def spawn(name: str) -> tuple[subprocess.Popen[str], int]:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "lb_support.py"), "--name", name],
            stdout=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
            },
        )
        procs.append(proc)
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        return proc, port

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
