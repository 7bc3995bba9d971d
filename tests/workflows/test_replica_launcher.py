"""Replicas fork from the agent's replica launcher (the model server already imported) and are
what a cold `python -m mlplane.serving` would be: their own session, environment, port and
metadata server. When the launcher dies its replicas die with it; the group brings them back
cold at once, a new launcher starts, and later replicas fork from it again (decision 0019)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

from mlplane.providers.local.agent.warm_pool import REPLICA_LAUNCHER
from mlplane.workflows.serving import DeployRequest, deploy, undeploy
from tests.local.local_helpers import processes, wait_until
from tests.workflows.conftest import LocalProject, alive

QUIET = lambda *_: None  # noqa: E731


def ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def agent_pid(lp: LocalProject) -> int:
    return int(json.loads((lp.root / ".mlplane" / "agent" / "agent.json").read_text())["pid"])


def launcher_pid(lp: LocalProject) -> int | None:
    agent = agent_pid(lp)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if ppid(int(entry)) == agent and REPLICA_LAUNCHER.encode() in cmdline(int(entry)):
                    return int(entry) if alive(int(entry)) else None
            except (OSError, ValueError):
                continue
    return None


def replica(lp: LocalProject, group: str, old: int | None = None) -> tuple[int, int]:
    """(pid, port) of the running replica of `group` (other than pid `old`)."""

    def running() -> tuple[int, int] | None:
        for p in processes(lp.team):
            if p.group == group and p.pid and p.port and p.pid != old and alive(p.pid):
                return p.pid, p.port
        return None

    return wait_until(running, 15, f"a replica of {group}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_replicas_fork_warm_and_come_back_cold_when_the_launcher_dies(
    local_project: LocalProject,
) -> None:
    lp = local_project
    launcher = wait_until(lambda: launcher_pid(lp), 20, "the replica launcher")
    time.sleep(1.0)  # it is ready once it has imported the model server
    first = deploy(lp.session, DeployRequest("warmed", "r1", lp.v1), QUIET)
    pid, port = replica(lp, "warmed-r1-mig")
    assert ppid(pid) == launcher and os.getsid(pid) == pid and os.getpgid(pid) == pid
    # its environment is its own: it listens on the $PORT the agent gave it, logging to its log
    [name] = [p.name for p in processes(lp.team) if p.pid == pid]
    log = lp.root / ".mlplane" / "agent" / "logs" / f"{name}.log"
    # (it says so just after it listens: a probe may be answered in between)
    wait_until(lambda: f"listening on 127.0.0.1:{port} " in log.read_text(), 10, "its line")

    os.kill(launcher, signal.SIGKILL)  # its replicas die with it (PR_SET_PDEATHSIG)
    wait_until(lambda: not alive(pid), 10, f"replica {pid} to die with its launcher")
    cold, _ = replica(lp, "warmed-r1-mig", old=pid)
    assert ppid(cold) == agent_pid(lp)  # started cold by the agent, the launcher being gone
    assert b"\0-m\0mlplane.serving\0" in cmdline(cold)
    wait_until(lambda: answers(first.revision_url + "healthz"), 15, "the cold replica to answer")

    again = wait_until(lambda: launcher_pid(lp), 20, "a new replica launcher")
    assert again != launcher
    time.sleep(1.0)
    deploy(lp.session, DeployRequest("warmed", "r2", lp.v2, traffic=50), QUIET)
    warm, _ = replica(lp, "warmed-r2-mig")
    assert ppid(warm) == again
    undeploy(lp.session, "warmed", "r2", QUIET)
    undeploy(lp.session, "warmed", "r1", QUIET)
    assert not alive(warm) and not alive(cold)
