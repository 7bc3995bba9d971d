"""`python -m mlplane.providers.local.dataplane --dir STATE_DIR [--detach] [--loop auto]`

The data-plane process of a project's agent. With --detach it forks into its own session (the
parent prints the child's pid and exits), so it is nobody's child: it outlives an agent that
crashed, and the next agent adopts it through `dataplane.json` and the control socket. It exits
on the `shutdown` op, on SIGTERM/SIGINT (draining in-flight requests), or when its state
directory is deleted. Exit status 3: another data plane holds the lock.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlplane.providers.local.dataplane")
    parser.add_argument("--dir", required=True, help="the agent's state directory")
    parser.add_argument("--detach", action="store_true", help="fork into the background")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    args = parser.parse_args(argv)
    from pathlib import Path

    from .files import DataPlaneFiles

    files = DataPlaneFiles(Path(args.dir).resolve())
    if args.detach:
        pid = os.fork()
        if pid:
            print(pid, flush=True)
            os._exit(0)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        out = os.open(files.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
    from .process import run

    return run(files, args.loop)


if __name__ == "__main__":
    sys.exit(main())
