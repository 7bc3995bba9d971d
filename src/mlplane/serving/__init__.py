"""mlplane's default model-server runtime (workload-side code: imports only `mlplane.errors`).

- artifacts: `write_artifact(out, manifest, files)`, `load_artifact(path)` (checksum-verified);
- predictors: the built-in `mlplane.linear/v1` model, or any `module:Class` named by the artifact;
- the server: `serve(artifact, port, base_path, ...)`, or `python -m mlplane.serving`.

The server modules (asyncio) load on first use, so training code importing the artifact API
stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplane.serving.artifact import (
    FORMAT_LINEAR,
    Artifact,
    ArtifactError,
    load_artifact,
    write_artifact,
)
from mlplane.serving.checksums import FileChecksums
from mlplane.serving.predictor import InstanceError, Predictor, load_predictor

if TYPE_CHECKING:
    from mlplane.serving.app import ModelApp, build_app
    from mlplane.serving.server import ModelServer, ServerSettings, serve

_LAZY = {
    "ModelApp": "mlplane.serving.app",
    "build_app": "mlplane.serving.app",
    "ModelServer": "mlplane.serving.server",
    "ServerSettings": "mlplane.serving.server",
    "serve": "mlplane.serving.server",
}

__all__ = [
    "FORMAT_LINEAR",
    "Artifact",
    "ArtifactError",
    "FileChecksums",
    "InstanceError",
    "ModelApp",
    "ModelServer",
    "Predictor",
    "ServerSettings",
    "build_app",
    "load_artifact",
    "load_predictor",
    "serve",
    "write_artifact",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlplane.serving' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)
