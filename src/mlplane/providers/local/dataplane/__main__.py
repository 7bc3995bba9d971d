"""`python -m mlplane.providers.local.dataplane --dir STATE_DIR [--detach] [--loop auto]
[--proxy python|haproxy]`

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
    parser.add_argument(
        "--proxy", choices=("python", "haproxy"), default="python",
        help="what serves the listeners: the Python load balancers, or a supervised haproxy",
    )  # fmt: skip
    args = parser.parse_args(argv)
    from pathlib import Path

    from .files import DataPlaneFiles

    files = DataPlaneFiles(Path(args.dir).resolve())
    if args.proxy == "haproxy":
        from .haproxy.process import find_haproxy

        if find_haproxy() is None:  # said before detaching, where the caller sees it
            print("error: --proxy haproxy: haproxy is not installed (apt-get install -y haproxy)",
                  file=sys.stderr)  # fmt: skip
            return 2
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

    return run(files, args.loop, args.proxy)


if __name__ == "__main__":
    sys.exit(main())
