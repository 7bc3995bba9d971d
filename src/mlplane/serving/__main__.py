"""`python -m mlplane.serving --artifact PATH [--port N] [--base-path /v1/models/NAME]`

Serves a model artifact on 127.0.0.1: POST /predict, GET /healthz, GET /openapi.json, each also
under the base path. Prints `listening on 127.0.0.1:PORT ...` once ready. SIGTERM/SIGINT: stop
accepting, answer in-flight requests, exit 0. A model that cannot be loaded exits non-zero with
the reason on stderr, before any port is bound.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from mlplane.errors import MlplaneError
from mlplane.serving.openapi import DEFAULT_ENDPOINTS_SERVICE
from mlplane.serving.server import DEFAULT_PORT, ServerSettings, serve


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError(value)
    return port


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mlplane.serving", description=(__doc__ or "").splitlines()[0]
    )
    defaults = ServerSettings()
    p.add_argument("--artifact", required=True, help="model directory or .json file")
    p.add_argument(
        "--port", type=_port, help=f"0: any free port (default: $PORT, else {DEFAULT_PORT})"
    )
    p.add_argument(
        "--base-path", help="URL prefix routed to this revision (default /v1/models/SERVICE)"
    )
    p.add_argument(
        "--service", help="service name for the base path and operationIds (default: model name)"
    )
    p.add_argument("--endpoints-service", default=DEFAULT_ENDPOINTS_SERVICE, help="OpenAPI host")
    p.add_argument(
        "--alias",
        action="append",
        default=[],
        metavar="PREFIX",
        help="a further URL prefix to answer under, e.g. a revision's own route (repeatable)",
    )
    p.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    p.add_argument(
        "--drain-timeout", type=float, default=defaults.drain_timeout_sec, help="seconds"
    )
    p.add_argument("--threads", type=int, default=defaults.threads, help="for custom predictors")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    port = args.port
    if port is None:
        env = os.environ.get("PORT", "")
        try:
            port = _port(env) if env else DEFAULT_PORT
        except ValueError:
            p.error(f"$PORT={env!r} is not a port number")
    if args.max_body_bytes < 1 or args.threads < 1 or args.drain_timeout < 0:
        p.error("--max-body-bytes and --threads must be positive, --drain-timeout not negative")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = ServerSettings(
        max_body_bytes=args.max_body_bytes,
        drain_timeout_sec=args.drain_timeout,
        threads=args.threads,
    )
    try:
        serve(
            args.artifact,
            port,
            args.base_path,
            service=args.service,
            endpoints_service=args.endpoints_service,
            settings=settings,
            aliases=tuple(args.alias),
        )
    except MlplaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
