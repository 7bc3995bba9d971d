"""The predictor contract and the loader that picks one for an artifact.

A predictor is any class with `from_artifact(artifact) -> instance` and
`predict(instances) -> list` (one JSON-serialisable prediction per instance). It raises
`InstanceError` for bad input, naming the field (`instances[3].length`). The class attribute
`inline = True` declares `predict` cheap and non-blocking, so the server calls it on its event
loop; otherwise (the default for custom predictors) it runs in a small thread pool.

`"predictor": "module:Class"` in the manifest selects a custom class. The module must already be
importable in the serving image: the artifact names code, it does not carry it.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

from mlplane.serving.artifact import FORMAT_LINEAR, Artifact, ArtifactError

BUILTIN: dict[str, str] = {FORMAT_LINEAR: "mlplane.serving.linear:LinearModel"}


class InstanceError(ValueError):
    """One request field is bad; `field` is its path in the request body."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@runtime_checkable
class Predictor(Protocol):
    def predict(self, instances: list[Any]) -> list[Any]: ...


def is_inline(predictor: Predictor) -> bool:
    return getattr(predictor, "inline", False) is True


def load_predictor(artifact: Artifact) -> Predictor:
    """The artifact's predictor: its `predictor` entry, else the built-in one for its format."""
    source = artifact.root / artifact.manifest_name
    spec = artifact.predictor or BUILTIN.get(artifact.format)
    if spec is None:
        raise ArtifactError(
            source,
            f"format '{artifact.format}' has no built-in predictor (built in: "
            f'{", ".join(sorted(BUILTIN))}); name one with "predictor": "module:Class"',
        )
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ArtifactError(
            source, f"predictor '{spec}': cannot import {module_name}: {exc}"
        ) from None
    cls = getattr(module, class_name, None)
    factory = getattr(cls, "from_artifact", None)
    if not callable(factory):
        raise ArtifactError(
            source, f"predictor '{spec}': no class with a from_artifact(artifact) method"
        )
    try:
        predictor = factory(artifact)
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(
            source, f"predictor '{spec}' failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(predictor, Predictor):
        raise ArtifactError(source, f"predictor '{spec}': from_artifact returned no predict()")
    return predictor
