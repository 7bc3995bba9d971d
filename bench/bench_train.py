"""Time from `mlplane train run` to the entrypoint's first line, beside running the entrypoint
directly (the anchor), in one run; also `--remote` (a training VM created through the engine and
the agent's Compute Engine API) to its first line in the VM's log.

Usage: python bench/bench_train.py [RUNS]. Starts a local agent in a temporary project (with its
own config directory, where a member user signs in: both runs act as that user) and stops it at
the end.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_project import isolate, signed_in, write_project

from mlplane.workflows import training as T
from mlplane.workflows.session import Session

FIRST = "generating"  # the example's first line: "generating 1500 training and ..."


def first_line(cmd: list[str], cwd: Path) -> float:
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(FIRST):
            elapsed = time.monotonic() - start
            break
    else:
        raise RuntimeError(f"no first line from {cmd}")
    proc.wait(60)
    return elapsed


def remote_first_line(session: Session, spec_path: Path) -> float:
    spec = T.load_spec(spec_path)
    start = time.monotonic()
    run = T.run_remote(session, spec, spec_path.parent, lambda *_: None)
    log = T.log_path(session, run.instance)
    while True:
        try:
            if FIRST in log.read_text():
                elapsed = time.monotonic() - start
                break
        except OSError:
            pass
        time.sleep(0.002)
    code = T.wait(session, run, 60)
    if code != 0:
        raise RuntimeError(f"the training VM's job exited {code}: see {log}")
    return elapsed


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    spec_path = Path(__file__).resolve().parent.parent / "examples" / "sentiment" / "train.toml"
    py = sys.executable
    mlplane = [str(Path(py).with_name("mlplane"))]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        isolate(root)
        project = write_project(root / "mlplane.toml")
        with signed_in(project) as session:
            direct = [py, "-m", "mlplane.examples.sentiment.train", "--out", str(root / "out")]
            anchor = [first_line(direct, root) for _ in range(runs)]
            train_run = [*mlplane, "train", "run", str(spec_path)]
            local = [first_line(train_run, root) for _ in range(runs)]
            remote = [remote_first_line(session, spec_path) for _ in range(runs)]
    a = statistics.median(anchor)
    print(f"median of {runs} runs, to the entrypoint's first line")
    print(f"  entrypoint run directly (anchor)           {a * 1e3:7.1f} ms")
    for name, xs in (("mlplane train run", local), ("mlplane train run --remote", remote)):
        m = statistics.median(xs)
        print(f"  {name:42} {m * 1e3:7.1f} ms  {m / a:5.2f}x anchor")


if __name__ == "__main__":
    main()
