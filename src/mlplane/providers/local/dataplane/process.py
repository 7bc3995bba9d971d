"""The data-plane process's life: lock, descriptors, control socket, signals, exit."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import resource
import signal
import sys
import time

from mlplane.providers.local.lb.__main__ import run as run_loop
from mlplane.providers.local.paths import write_atomic

from .files import DataPlaneFiles, remove_files, start_time
from .pyproxies import PythonProxies
from .server import DataPlane, Proxies, serve_control

log = logging.getLogger("mlplane.dataplane")
EXIT_LOCKED = 3
WATCH_SEC = 2.0
UNCLAIMED_SEC = 10.0
"""A data plane that no agent has configured by then exits (its agent died while it started)."""


def raise_fd_limit() -> int:
    """Every client connection can hold an upstream one: use all the descriptors allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def run(files: DataPlaneFiles, loop: str = "auto", proxy: str = "python") -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    fd = os.open(files.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.error("another data plane holds %s; not starting", files.lock)
        return EXIT_LOCKED
    try:
        limit = raise_fd_limit()
        run_loop(_serve(files, limit, proxy), loop)
        return 0
    finally:
        remove_files(files)
        os.close(fd)


def make_proxies(files: DataPlaneFiles, proxy: str) -> Proxies:
    """The Python load balancers, or a supervised haproxy (ConfigError when not installed)."""
    if proxy == "haproxy":
        from .haproxy.plane import HaproxyProxies
        from .haproxy.process import HaproxyProcess

        return HaproxyProxies(HaproxyProcess(files.root))
    return PythonProxies()


async def _serve(files: DataPlaneFiles, fd_limit: int, proxy: str) -> None:
    dp = DataPlane(make_proxies(files, proxy), proxy)
    address = files.socket_address()
    with contextlib.suppress(OSError):
        os.unlink(address)
    old = os.umask(0o077)
    try:
        server = await serve_control(dp, address)
    finally:
        os.umask(old)
    pid = os.getpid()
    info = {"pid": pid, "start": start_time(pid) or 0, "startedAt": dp.started_at}
    write_atomic(files.info, json.dumps(info), mode=0o644)
    log.info("data plane pid %d: control socket %s, %d descriptors", pid, files.socket, fd_limit)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, dp.stopping.set)
    watch = loop.create_task(_watch(files, dp))
    await dp.stopping.wait()
    watch.cancel()
    server.close()
    log.info("stopping: draining %d listeners", len(dp.proxies.ports()))
    await dp.stop()
    log.info("stopped after %.0f s", time.time() - dp.started_at)


async def _watch(files: DataPlaneFiles, dp: DataPlane) -> None:
    """Stop when the state directory goes away: no agent could find this process any more."""
    inode = files.lock.stat().st_ino
    started = time.monotonic()
    while True:
        await asyncio.sleep(WATCH_SEC)
        if dp.config.version == 0 and time.monotonic() - started > UNCLAIMED_SEC:
            log.warning(
                "no agent configured this data plane within %.0f s: stopping", UNCLAIMED_SEC
            )
            dp.stopping.set()
            return
        try:
            gone = files.lock.stat().st_ino != inode
        except OSError:
            gone = True
        if gone:
            log.warning("state directory %s is gone: stopping", files.root)
            dp.stopping.set()
            return
