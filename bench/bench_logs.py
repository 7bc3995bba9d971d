"""Benchmark logging: throughput in lines/s and a chatty job's slowdown with logging on vs off,
side by side in one run.

    python bench/bench_logs.py [--lines 200000] [--work 40] [--rounds 4]

(a) pipe mode: a child prints LINES lines as fast as it can through
    `python -m mlplane.data.logs.pipe`; throughput = lines / wall time until every entry is on disk.
(b) pipe mode slowdown: a "job" child that does WORK units of arithmetic per printed line, timed
    by itself from its first line to its last, with stdout to /dev/null (off) and through the
    pipe (on); rounds alternate off/on; the ratio compares the least-disturbed (min) runs, the
    median and the job's CPU time are shown beside it (a shared 2-core machine is noisy);
    twice: a very chatty job (WORK per line) and a less chatty one (LINES/4 lines, 10 x WORK).
(c) the writer API in-process: the same job calling `LogWriter.write` per line vs not logging.
Every log is written as the `training` service account, as a training job writes it: the
project's admin impersonates it (IAM Credentials' generateAccessToken) and the pipe and the
writer get its token as gcloud takes one (CLOUDSDK_AUTH_ACCESS_TOKEN_FILE). Runs in a temporary
project (its local agent, the token authority, and its own config directory) and stops the
agent at the end; bounded (about 40 s with the defaults on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = """\
[project]
id = "bench-ml"
region = "us-central1"
zone = "us-central1-a"

[team]
principals = ["user:alice@example.com"]
admins = ["user:admin@example.com"]
"""
ADMIN = "admin@example.com"
CREDENTIAL_VARS = ("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", "GOOGLE_APPLICATION_CREDENTIALS")

JOB = """
import sys, time
lines, work, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
acc = 0
t0 = time.perf_counter()
for i in range(lines):
    for k in range(work):
        acc = (acc * 31 + k) % 1000003
    print(f"step {i} loss {acc / 1000003:.6f}")
sys.stdout.flush()
open(out, "w").write(f"{time.perf_counter() - t0} {time.process_time()}")
"""


def env() -> dict[str, str]:
    """This process's environment, its config directory and the training account's token."""
    ambient = ("MLPLANE_", "GCE_META")
    e = {k: v for k, v in os.environ.items() if not k.startswith(ambient)}
    e["MLPLANE_CONFIG_DIR"] = os.environ["MLPLANE_CONFIG_DIR"]
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), e.get("PYTHONPATH", "")])
    return e


def act_as_training(project: Path) -> None:
    """Sign the admin in, impersonate `training`, and make its token this process's (and its
    children's) credential."""
    from mlplane.workflows import compose
    from mlplane.workflows.session import Session

    compose.login(ADMIN)
    compose.activate(ADMIN)
    token = compose.access_token(Session.open(project, impersonate="training").api)
    path = project.parent / "token-training"
    path.touch(mode=0o600)
    path.write_text(token)
    os.environ["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"] = str(path)


def pipe_argv(project: Path, resource: str) -> list[str]:
    return [sys.executable, "-m", "mlplane.data.logs.pipe", "--resource", resource]


def run_job(
    project: Path, lines: int, work: int, logged: bool, tag: str
) -> tuple[float, float, float]:
    """(job's own wall seconds, its CPU seconds, wall seconds until the pipe exited)."""
    out = project.parent / f"{tag}.time"
    job = [sys.executable, "-c", JOB, str(lines), str(work), str(out)]
    argv = job
    if logged:
        argv = [*pipe_argv(project, tag), "--project", str(project), "--"]
        argv += job
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        subprocess.run(argv, stdout=devnull, env=env(), check=True, timeout=120)
    wall = time.perf_counter() - t0
    job_wall, job_cpu = map(float, out.read_text().split())
    return job_wall, job_cpu, wall


def count_lines(project: Path, resource: str) -> int:
    path = project.parent / ".mlplane" / "logs" / resource / "cos_containers.jsonl"
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def writer_job(project: Path, lines: int, work: int, mode: str) -> float:
    """The job in-process; mode: off (no output), print (to /dev/null), writer (LogWriter)."""
    sys.path.insert(0, str(ROOT / "src"))
    from mlplane.data.logs import LogWriter

    w = LogWriter("train-w", project_file=project)
    out = open(os.devnull, "w")  # noqa: SIM115
    acc = 0
    t0 = time.perf_counter()
    for i in range(lines):
        for k in range(work):
            acc = (acc * 31 + k) % 1000003
        if mode == "writer":
            w.write(f"step {i} loss {acc / 1000003:.6f}")
        elif mode == "print":
            print(f"step {i} loss {acc / 1000003:.6f}", file=out)
    w.close()
    out.close()
    return time.perf_counter() - t0


def slowdown(project: Path, lines: int, work: int, rounds: int) -> None:
    runs: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for r in range(rounds):  # alternate, so that a neighbour's load hits both alike
        runs[False].append(run_job(project, lines, work, False, f"off-{work}-{r}"))
        runs[True].append(run_job(project, lines, work, True, f"train-on-{work}-{r}"))
    rate = lines / min(x[0] for x in runs[False])
    print(f"(b) pipe mode, a job printing {lines} lines ({rate:,.0f} lines/s), {rounds} rounds")
    print("    job seconds    wall min  wall median  cpu min")
    for logged in (False, True):
        w = [x[0] for x in runs[logged]]
        c = [x[1] for x in runs[logged]]
        name = "logging on " if logged else "logging off"
        print(f"    {name}   {min(w):8.3f}  {statistics.median(w):11.3f}  {min(c):7.3f}")
    ratio = min(x[0] for x in runs[True]) / min(x[0] for x in runs[False])
    med = statistics.median(x[0] for x in runs[True]) / statistics.median(x[0] for x in runs[False])
    print(f"    ratio on/off (min) {ratio:.3f}: slowdown {100 * (ratio - 1):+.1f} %", end="")
    print(f"   (median {100 * (med - 1):+.1f} %)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lines", type=int, default=200_000)
    p.add_argument("--work", type=int, default=40, help="arithmetic steps per printed line")
    p.add_argument("--rounds", type=int, default=4)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
        os.environ["MLPLANE_CONFIG_DIR"] = str(Path(tmp) / "config")
        for var in CREDENTIAL_VARS:
            os.environ.pop(var, None)
        project = Path(tmp) / "mlplane.toml"
        project.write_text(PROJECT)
        sys.path.insert(0, str(ROOT / "src"))
        from mlplane.workflows import compose

        compose.agent_up(project)
        try:
            act_as_training(project)
            measure(project, a)
        finally:
            compose.agent_down(project)
    return 0


def measure(project: Path, a: argparse.Namespace) -> None:
    _, _, wall = run_job(project, a.lines, 0, True, "train-raw")
    stored = count_lines(project, "train-raw")
    print(f"(a) pipe mode, {a.lines} lines as fast as a child prints them:")
    print(f"    {stored} entries stored in {wall:.2f} s = {stored / wall:,.0f} lines/s")

    for lines, work in ((a.lines, a.work), (a.lines // 4, a.work * 10)):
        slowdown(project, lines, work, a.rounds)

    t = {
        m: min(writer_job(project, a.lines, a.work, m) for _ in range(3))
        for m in ("off", "print", "writer")
    }
    per_line = 1e6 * (t["writer"] - t["off"]) / a.lines
    print("(c) LogWriter.write in-process, same job, min of 3:")
    print(f"    no output {t['off']:.3f} s   ", end="")
    print(f"print() to /dev/null {t['print']:.3f} s   ", end="")
    print(f"LogWriter {t['writer']:.3f} s ({a.lines / t['writer']:,.0f} lines/s)")
    print(f"    LogWriter costs {per_line:.2f} us/line; ratio vs print ", end="")
    print(f"{t['writer'] / t['print']:.3f}, vs no output {t['writer'] / t['off']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
