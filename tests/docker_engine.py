"""A private Docker engine for tests and benches, as local-components.md describes it: Debian's
dockerd as root with its data and exec roots under a temporary directory, a unix socket, no
iptables and no bridge (containers use the host network). The storage driver is overlay2 where
the kernel mounts overlayfs (an order of magnitude faster to build on), else vfs. It is stopped
by its PID.

Where it cannot run (not root, no dockerd, no docker-registry or debootstrap) the caller skips,
except under CI (MLPLANE_REQUIRE_TOOLS=1), where that is a failure (tests/iam/tools.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

READY_SEC = 30.0


@dataclass
class Dockerd:
    pid: int
    host: str  # DOCKER_HOST value
    driver: str
    root: Path
    log: Path

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args],
            capture_output=True,
            text=True,
            timeout=600,
            check=check,
            env={**os.environ, **self.env()},
        )


def unavailable() -> str:
    """Why a private engine cannot run here ('' when it can)."""
    if os.geteuid() != 0:
        return "dockerd needs root"
    for tool, package in (
        ("dockerd", "docker.io"),
        ("docker", "docker.io"),
        ("docker-registry", "docker-registry"),
        ("debootstrap", "debootstrap"),
    ):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is not installed (apt-get install {package})"
    return ""


def _overlay_works(scratch: Path) -> bool:
    dirs = [scratch / d for d in ("l", "u", "w", "m")]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={dirs[0]},upperdir={dirs[1]},workdir={dirs[2]}"
    out = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, str(dirs[3])],
        capture_output=True,
        timeout=30,
    )
    if out.returncode != 0:
        return False
    subprocess.run(["umount", str(dirs[3])], capture_output=True, timeout=30)
    return True


def _start(root: Path, driver: str) -> Dockerd | None:
    sock = root / "docker.sock"
    log = root / f"dockerd-{driver}.log"
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "exec").mkdir(parents=True, exist_ok=True)
    cmd = [
        "dockerd",
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "-H",
        f"unix://{sock}",
        "--pidfile",
        str(root / "dockerd.pid"),
        "--iptables=false",
        "--bridge=none",
        f"--storage-driver={driver}",
    ]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    handle = Dockerd(proc.pid, f"unix://{sock}", driver, root, log)
    deadline = time.monotonic() + READY_SEC
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        got = subprocess.run(
            ["docker", "info", "--format", "{{.Driver}}"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, **handle.env()},
        )
        if got.returncode == 0:
            if got.stdout.strip() == driver:
                return handle
            break
        time.sleep(0.3)
    stop(handle)
    return None


def start(root: Path) -> Dockerd:
    """Start a private engine under `root` (overlay2 if the kernel allows, else vfs)."""
    root.mkdir(parents=True, exist_ok=True)
    drivers = ["overlay2", "vfs"] if _overlay_works(root / "probe") else ["vfs"]
    for driver in drivers:
        handle = _start(root / driver, driver)
        if handle is not None:
            return handle
    raise RuntimeError(f"dockerd did not start under {root} (see its dockerd-*.log)")


def stop(handle: Dockerd) -> None:
    """Stop the engine by its PID (SIGTERM, SIGKILL after 20 s) and remove its files."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(handle.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(handle.pid, os.WNOHANG)
        except ChildProcessError:
            done = handle.pid if not Path(f"/proc/{handle.pid}").exists() else 0
        if done:
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(handle.pid, signal.SIGKILL)
    # overlay mounts left behind by a killed engine would make the tree unremovable
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        mounts = Path("/proc/mounts").read_text().splitlines()
        for line in reversed(mounts):
            target = line.split()[1]
            if target.startswith(str(handle.root)):
                subprocess.run(["umount", "-l", target], capture_output=True, timeout=30)
    shutil.rmtree(handle.root, ignore_errors=True)


@contextlib.contextmanager
def running(parent: Path | None = None) -> Iterator[Dockerd]:
    root = Path(tempfile.mkdtemp(prefix="mlplane-dockerd-", dir=parent))
    handle = start(root)
    try:
        yield handle
    finally:
        stop(handle)
        shutil.rmtree(root, ignore_errors=True)
