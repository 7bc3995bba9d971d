"""The warm build worker: Python with mlplane's build steps already imported, forking one child
per step (`python -m mlplane.cli.warm_worker`, started by the local agent: it is a launcher of
the CLI, so it lives beside it; the forking is `mlplane.zygote`'s).

A Cloud Build step on Google runs in a builder image that is already pulled; locally the step
is `python -m mlplane ci step ...`, and starting an interpreter and importing mlplane's engine,
models and client for it costs more than the step's own work (about 0.2 s of a 0.4 s deploy).
So the agent keeps this process: it imports what steps import once (and parses what they parse:
the discovery documents, the shipped operational model and the IAM catalog), then forks for
each step. The child becomes exactly what a fresh `python -m mlplane ARGS` would be and runs
the same `__main__`; nothing is shared back.

Modules preloaded here must not read the environment at import time (they read it when called).
"""

from __future__ import annotations

import importlib

from mlplane.zygote import serve

# What `mlplane ci step deploy|undeploy|train` import (measured: ~0.2 s on their start-up path).
PRELOAD = (
    "mlplane.cli.main",
    "mlplane.cli.parsing",
    "mlplane.cli.ci",
    "mlplane.workflows.ci",
    "mlplane.workflows.serving",
    "mlplane.workflows.training",
    "mlplane.workflows.session",
    "mlplane.workflows.compose",
    "mlplane.engine.engine",
    "mlplane.iam.loading",
    "mlplane.providers.gcp.client",
    "mlplane.providers.gcp.compute",
    "mlplane.providers.gcp.servicemanagement",
    "mlplane.data.artifacts",
    "mlplane.cli.images",
    "mlplane.images.registry",
    "mlplane.workflows.process_image",
    "mlplane.providers.gcp.identity",
    "mlplane.providers.gcp.dryrun",
    "mlplane.providers.local.platform",
    "mlplane.providers.local.control",
    "mlplane.providers.local.admin_client",
    "mlplane.providers.local.registry_info",
    "encodings.idna",  # http.client's, for a host name
)


def preload() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    from mlplane.apis.discovery import VERSIONS, load

    for api in VERSIONS:  # parsed once here, not in every step
        load(api)
    from mlplane.iam.catalog import load_catalog
    from mlplane.iam.loading import load_shipped_model

    load_shipped_model()
    load_catalog()


def main() -> None:
    preload()
    serve()


if __name__ == "__main__":
    main()
