"""A custom predictor: raw review text in, the linear model's prediction out.

Named by an artifact's manifest as
`"predictor": "mlplane.examples.sentiment.text_predictor:TextSentiment"`; it reuses the linear
fields of the same manifest. Instances: `{"text": "..."}`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mlplane.examples.sentiment.data import featurize
from mlplane.serving.artifact import Artifact
from mlplane.serving.linear import LinearModel
from mlplane.serving.predictor import InstanceError


class TextSentiment:
    inline: ClassVar[bool] = True  # tokenising a review is microseconds

    def __init__(self, model: LinearModel) -> None:
        self.model = model

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> TextSentiment:
        return cls(LinearModel.from_artifact(artifact))

    def predict(self, instances: list[Any]) -> list[Any]:
        rows = []
        for i, inst in enumerate(instances):
            text = inst.get("text") if isinstance(inst, dict) else None
            if not isinstance(text, str):
                raise InstanceError(f"instances[{i}].text", "expected a string")
            rows.append(featurize(text))
        return self.model.predict(rows)
