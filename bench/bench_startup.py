"""Start-up of `mlplane --help`, `iam check`, `status`, `serve list`, `train list` and
`notebook list` as a ratio to `python -c pass`.

Usage: python bench/bench_startup.py [RUNS]. Goal (issues 7 and 11): at most 3x. Times the installed
`mlplane` console script next to this interpreter (falling back to `python -m mlplane`) and
`python -c pass` with the same interpreter, interleaved (one run of each in turn), and prints
medians and ratios. `status` is timed on a project whose agent runs a deployed revision (the
quickstart), as a signed-in user: it reads the state store and asks the agent for its processes.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def medians_ms(commands: list[list[str]], runs: int, cwd: Path, env: dict[str, str]) -> list[float]:
    """Each command's median start-to-exit. Runs are interleaved (one of each per round, after
    an unmeasured round that checks each exits 0: a failing command would time as fast), so a
    change in the machine's load falls on all of them alike."""
    times: list[list[float]] = [[] for _ in commands]
    for round_ in range(runs + 1):
        for cmd, samples in zip(commands, times, strict=True):
            t = time.perf_counter()
            subprocess.run(
                cmd,
                cwd=cwd,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=not round_,
            )
            if round_:
                samples.append((time.perf_counter() - t) * 1e3)
    return [statistics.median(samples) for samples in times]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    py = sys.executable
    script = Path(py).with_name("mlplane")
    ml = [str(script)] if script.exists() else [py, "-m", "mlplane"]
    # A pip install byte-compiles the package; editable installs and PYTHONDONTWRITEBYTECODE do
    # not, and recompiling every module on every start would dominate what we measure.
    import compileall

    import mlplane

    compileall.compile_dir(Path(mlplane.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory() as d:
        cwd = Path(d)
        env = {**os.environ, "MLPLANE_CONFIG_DIR": str(cwd / "config")}
        env.pop("MLPLANE_PROJECT", None)

        def run(*args: str) -> None:
            subprocess.run([*ml, *args], cwd=cwd, env=env, check=True, capture_output=True)

        run("init")
        check = [*ml, "iam", "check", "--principal", "training", "training.write-artifacts"]
        subprocess.run(check, cwd=cwd, env=env, check=True, capture_output=True)  # the cache
        try:
            run("quickstart")  # starts the agent, signs in the first user, deploys
            named = [
                ("python -c pass", [py, "-c", "pass"]),
                ("mlplane --help", [*ml, "--help"]),
                ("mlplane iam check (cached policy)", check),
                ("mlplane status (agent, 1 revision)", [*ml, "status"]),
                ("mlplane serve list", [*ml, "serve", "list"]),
                ("mlplane train list", [*ml, "train", "list"]),
                ("mlplane notebook list", [*ml, "notebook", "list"]),
            ]
            ms = medians_ms([cmd for _, cmd in named], runs, cwd, env)
            rows = [(name, m) for (name, _), m in zip(named, ms, strict=True)]
            base = ms[0]
        finally:
            run("down")
    print(f"median of {runs} runs (interleaved)")
    for name, ms in rows:
        print(f"  {name:38} {ms:7.1f} ms  {ms / base:5.2f}x   (goal <= 3x)")


if __name__ == "__main__":
    main()
