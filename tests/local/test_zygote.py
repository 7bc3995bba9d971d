"""A warm launcher's child is what `python -m MODULE ARGS` would be: the same exit status, the
same output in its log, its own environment, directory and session; a signal's death is told
as the negative signal number, as asyncio tells it of a process it started."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from mlplane.providers.local.agent.warm_pool import REPLICA_LAUNCHER, WarmWorker

PROBE = "tests.local.zygote_probe"


async def _launcher(tmp: Path) -> WarmWorker:
    worker = WarmWorker(tmp / "launcher.log", REPLICA_LAUNCHER, ("mlplane.serving", PROBE))
    await worker.start(dict(os.environ))
    for _ in range(400):
        if worker.ready:
            return worker
        await asyncio.sleep(0.025)
    raise AssertionError(f"launcher not ready: {(tmp / 'launcher.log').read_text()}")


def test_a_failing_server_exits_and_says_so_as_a_cold_one_does(tmp_path: Path) -> None:
    args = ["--artifact", str(tmp_path / "missing"), "--port", "0"]
    cold = subprocess.run(
        [sys.executable, "-m", "mlplane.serving", *args], capture_output=True, text=True
    )

    async def warm() -> tuple[int, str]:
        worker = await _launcher(tmp_path)
        try:
            log = tmp_path / "warm.log"
            child = await worker.run("mlplane.serving", args, dict(os.environ), tmp_path, log)
            assert child is not None
            return await child.wait(), log.read_text()
        finally:
            await worker.stop()

    code, output = asyncio.run(warm())
    assert cold.returncode != 0 and code == cold.returncode
    assert output.strip() == (cold.stdout + cold.stderr).strip()


def test_the_child_has_the_requests_environment_directory_and_session(tmp_path: Path) -> None:
    out = tmp_path / "seen.txt"
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
           "ONLY_HERE": "yes", "OUT": str(out)}  # fmt: skip
    (tmp_path / "work").mkdir()

    async def warm() -> tuple[int, int, int]:
        worker = await _launcher(tmp_path)
        try:
            child = await worker.run(PROBE, ["a", "b"], env, tmp_path / "work", tmp_path / "log")
            assert child is not None
            code = await child.wait()
            killed = await worker.run(PROBE, ["sleep"], env, tmp_path, tmp_path / "log2")
            assert killed is not None
            await asyncio.sleep(0.2)
            os.kill(killed.pid, signal.SIGKILL)
            return code, await killed.wait(), child.pid
        finally:
            await worker.stop()

    code, killed, pid = asyncio.run(warm())
    assert code == 7 and killed == -signal.SIGKILL
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert seen["argv0"].endswith("zygote_probe.py") and seen["args"] == "a b"
    assert seen["ONLY_HERE"] == "yes" and seen["HOME"] == "-"
    assert seen["cwd"] == str(tmp_path / "work")
    assert seen["sid"] == str(pid) and seen["name"] == "__main__"
