"""`python -m mlplane.providers.local.lb --port P --config FILE.json`

Prints `listening on 127.0.0.1:PORT` once ready. SIGTERM/SIGINT: stop accepting, let in-flight
requests finish (up to --drain-timeout), exit 0. SIGHUP: re-read the config file and apply it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine

from mlplane.errors import ConfigError

from .config_json import load_config
from .proxy import BIND_HOST, LoadBalancer

log = logging.getLogger("mlplane.providers.local.lb")


async def serve(port: int, config_path: str, drain_timeout: float) -> None:
    config = load_config(config_path)
    lb = LoadBalancer(config.url_map, config.backend_services, settings=config.settings)
    bound = await lb.start(port)
    print(f"listening on {BIND_HOST}:{bound}", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def reload() -> None:
        try:
            new = load_config(config_path)
            lb.apply(new.url_map, new.backend_services)
            log.warning("reloaded %s", config_path)
        except ConfigError as exc:
            log.error("config not reloaded: %s", exc)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    await lb.stop(drain_timeout_sec=drain_timeout)


def run(main: Coroutine[object, object, None], loop: str = "auto") -> None:
    """asyncio.run on uvloop when it is installed (or asked for), else on the stdlib loop."""
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlplane.providers.local.lb",
        description="Run the local load balancer (URL map + backend services) standalone.",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--config", required=True, help="JSON file: urlMap + backendServices")
    parser.add_argument("--drain-timeout", type=float, default=30.0, help="seconds, on SIGTERM")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        run(serve(args.port, args.config, args.drain_timeout), args.loop)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
