"""`python -m mlplane.providers.local.agent --project FILE [--detach]`

With --detach (what `mlplane up` uses) the process forks: the child starts a new session,
sends its output to the agent log and runs the agent; the parent prints the child's PID and
exits at once, so the agent is never a child of the command that started it. Nothing heavy is
imported before the fork.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlplane.providers.local.agent")
    parser.add_argument("--project", required=True, help="the project file (mlplane.toml)")
    parser.add_argument("--detach", action="store_true", help="fork into the background")
    parser.add_argument("--log", help="log file (with --detach)")
    args = parser.parse_args(argv)
    if args.detach:
        pid = os.fork()
        if pid:
            print(pid, flush=True)
            os._exit(0)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        if args.log:
            out = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(out, 1)
            os.dup2(out, 2)
    import logging
    from pathlib import Path

    from .daemon import run

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return run(Path(args.project))


if __name__ == "__main__":
    sys.exit(main())
