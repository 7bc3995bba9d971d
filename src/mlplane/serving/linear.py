"""The built-in predictor for `mlplane.linear/v1`: a linear or logistic model, pure Python.

Manifest fields: `features` (unique names), `weights` (one number per feature), `bias`,
`link` ("identity" | "logistic", default "identity"), and for logistic models optionally
`labels` ([negative, positive]) and `threshold` (default 0.5).

Each instance is an object giving every feature a number; a missing, unknown or non-numeric
field is an InstanceError naming it. Predictions: `{"value": z}` for identity,
`{"score": p, "label": ...}` for logistic (label only when `labels` is given).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mlplane.serving.artifact import Artifact, ArtifactError
from mlplane.serving.predictor import InstanceError

LINKS = ("identity", "logistic")


def _number(value: object) -> bool:
    return (type(value) is float or type(value) is int) and math.isfinite(value)


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class LinearModel:
    inline: ClassVar[bool] = True  # microseconds per instance: run on the event loop

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    link: str = "identity"
    labels: tuple[str, str] | None = None
    threshold: float = 0.5

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> LinearModel:
        return cls.from_manifest(artifact.manifest, artifact.root / artifact.manifest_name)

    @classmethod
    def from_manifest(cls, m: Mapping[str, Any], source: Path | str) -> LinearModel:
        """Validate the linear fields; ArtifactError names the bad one."""

        def bad(field: str, message: str) -> ArtifactError:
            return ArtifactError(source, f"field '{field}': {message}")

        features = m.get("features")
        if not isinstance(features, list) or not features:
            raise bad("features", "expected a non-empty list of feature names")
        for i, name in enumerate(features):
            if not isinstance(name, str) or not name:
                raise bad(f"features[{i}]", "expected a non-empty string")
        if len(set(features)) != len(features):
            raise bad("features", "feature names must be unique")
        weights = m.get("weights")
        if not isinstance(weights, list) or len(weights) != len(features):
            raise bad("weights", f"expected {len(features)} numbers, one per feature")
        for i, w in enumerate(weights):
            if not _number(w):
                raise bad(f"weights[{i}]", "expected a finite number")
        bias = m.get("bias")
        if not _number(bias) or not isinstance(bias, int | float):
            raise bad("bias", "expected a finite number")
        link = m.get("link", "identity")
        if link not in LINKS:
            raise bad("link", f"expected one of {', '.join(LINKS)}")
        labels = m.get("labels")
        if labels is not None and (
            link != "logistic"
            or not isinstance(labels, list)
            or len(labels) != 2
            or not all(isinstance(x, str) for x in labels)
        ):
            raise bad("labels", "expected [negative, positive] label strings (logistic only)")
        threshold = m.get("threshold", 0.5)
        if not _number(threshold) or not 0 < threshold < 1:
            raise bad("threshold", "expected a number between 0 and 1")
        return cls(
            features=tuple(features),
            weights=tuple(float(w) for w in weights),
            bias=float(bias),
            link=link,
            labels=(labels[0], labels[1]) if labels else None,
            threshold=float(threshold),
        )

    def score(self, values: Mapping[str, float]) -> float:
        """The linear score `bias + sum(w * x)` of one complete, valid instance."""
        return self.bias + sum(
            w * values[f] for f, w in zip(self.features, self.weights, strict=True)
        )

    def predict(self, instances: list[Any]) -> list[Any]:
        out: list[Any] = []
        pairs = tuple(zip(self.features, self.weights, strict=True))
        n = len(pairs)
        logistic = self.link == "logistic"
        for i, inst in enumerate(instances):
            if type(inst) is not dict:
                raise InstanceError(f"instances[{i}]", "expected an object of feature values")
            z = self.bias
            for name, w in pairs:
                v = inst.get(name)
                if type(v) is not float and type(v) is not int:
                    raise _field_error(i, name, inst)
                z += w * v
            if len(inst) != n:
                extra = sorted(set(inst) - set(self.features))
                raise InstanceError(
                    f"instances[{i}].{extra[0]}",
                    f"unknown feature (the model takes: {', '.join(self.features)})",
                )
            if not math.isfinite(z):
                raise _overflow(i, self.features, inst)
            if not logistic:
                out.append({"value": z})
                continue
            p = sigmoid(z)
            if self.labels is None:
                out.append({"score": p})
            else:
                out.append({"score": p, "label": self.labels[p >= self.threshold]})
        return out


def _field_error(i: int, name: str, inst: dict[str, Any]) -> InstanceError:
    if name not in inst:
        return InstanceError(f"instances[{i}].{name}", "missing (expected a number)")
    value = inst[name]
    kind = {bool: "boolean", str: "string", type(None): "null", list: "array", dict: "object"}
    got = kind.get(type(value), type(value).__name__)
    return InstanceError(f"instances[{i}].{name}", f"expected a number, got {got}")


def _overflow(i: int, features: tuple[str, ...], inst: dict[str, Any]) -> InstanceError:
    for name in features:
        if not math.isfinite(inst[name]):
            return InstanceError(f"instances[{i}].{name}", "expected a finite number")
    return InstanceError(f"instances[{i}]", "feature values overflow to a non-finite score")
