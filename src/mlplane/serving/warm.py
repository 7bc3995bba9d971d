"""The warm replica launcher: the model server's code (and the artifact fetch's) already
imported, forking one replica per request (`python -m mlplane.serving.warm`, started by the
local agent; the forking is `mlplane.zygote`'s, decision 0019).

A serving VM on Google boots from an image that is already pulled; locally a replica is `python
-m mlplane.serving ...`, and an interpreter's start plus the server's imports (asyncio, the HTTP
protocol, the artifact and predictor code) are most of its start-up. A forked replica is what a
fresh `python -m mlplane.serving ARGS` would be: its own environment, session, log and PID; it
still reads and verifies its artifact and loads its model itself. Modules preloaded here read
no environment and open no file or socket at import time.
"""

from __future__ import annotations

import importlib

from mlplane.zygote import serve

PRELOAD = (
    "mlplane.serving.__main__",  # the command's own imports (argparse, logging, the server)
    "mlplane.serving.server",
    "mlplane.serving.app",
    "mlplane.serving.protocol",
    "mlplane.serving.linear",
    "mlplane.serving.openapi",
    # a replica of a gs:// artifact fetches it first (`python -m mlplane.data.fetch ... --
    # python -m mlplane.serving ...`), as its own identity
    "mlplane.data.fetch",
    "mlplane.data.artifacts",
    "mlplane.data.artifacts.local",
    "mlplane.data.settings",
    "mlplane.project_path",
    "mlplane.apis.documents",
    "google_crc32c",
    "importlib.resources",
    "tomllib",
    "platform",
    "uuid",
    "encodings.idna",
)


def preload() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    from mlplane.apis.discovery import VERSIONS, load

    for api in VERSIONS:  # what a fetch's client parses (as the build worker has them)
        load(api)


def main() -> None:
    preload()
    serve()


if __name__ == "__main__":
    main()
