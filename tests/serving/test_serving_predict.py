"""Prediction: the linear model's math, and the request checks that name the bad field."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from serving_support import linear_manifest

from mlplane.serving.app import ModelApp, build_app
from mlplane.serving.linear import LinearModel, sigmoid
from mlplane.serving.predictor import InstanceError


def model(**overrides: Any) -> LinearModel:
    return LinearModel.from_manifest(linear_manifest(**overrides), "test")


def test_identity_link_is_bias_plus_weighted_sum() -> None:
    # 0.5 + 2*3 - 1*4 = 2.5 ; 0.5 + 2*(-1.5) - 1*0 = -2.5
    assert model().predict([{"a": 3, "b": 4}, {"a": -1.5, "b": 0}]) == [
        {"value": 2.5},
        {"value": -2.5},
    ]


def test_logistic_link_scores_and_labels_by_threshold() -> None:
    m = model(link="logistic", labels=["neg", "pos"], threshold=0.7)
    out = m.predict([{"a": 1, "b": 1}, {"a": 0, "b": 0}, {"a": 0, "b": 3}])
    # z = 1.5, 0.5, -2.5
    expected = [1 / (1 + math.exp(-z)) for z in (1.5, 0.5, -2.5)]
    assert [p["score"] for p in out] == pytest.approx(expected, rel=1e-12)
    assert [p["label"] for p in out] == ["pos", "neg", "neg"]  # 0.82 >= 0.7 > 0.62
    assert model(link="logistic").predict([{"a": 0, "b": 0}]) == [{"score": sigmoid(0.5)}]


def test_sigmoid_saturates_without_overflow() -> None:
    assert sigmoid(-1000.0) == 0.0 and sigmoid(1000.0) == 1.0 and sigmoid(0.0) == 0.5


@pytest.mark.parametrize(
    ("instance", "field", "message"),
    [
        ({"a": 1}, "instances[0].b", "missing"),
        ({"a": "1", "b": 2}, "instances[0].a", "got string"),
        ({"a": True, "b": 2}, "instances[0].a", "got boolean"),
        ({"a": None, "b": 2}, "instances[0].a", "got null"),
        ({"a": [1], "b": 2}, "instances[0].a", "got array"),
        ({"a": 1, "b": 2, "c": 3}, "instances[0].c", "unknown feature"),
        ({"a": 1e308, "b": -1e308}, "instances[0]", "non-finite"),
        ({"a": float("inf"), "b": 1}, "instances[0].a", "finite"),
        ([1, 2], "instances[0]", "expected an object"),
    ],
)
def test_bad_instances_name_the_field(instance: Any, field: str, message: str) -> None:
    with pytest.raises(InstanceError) as err:
        model().predict([instance])
    assert err.value.field == field and message in err.value.message


def test_later_instances_are_named_by_index() -> None:
    with pytest.raises(InstanceError) as err:
        model().predict([{"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1}])
    assert err.value.field == "instances[2].b"


@pytest.fixture
def app(make_artifact: Any) -> ModelApp:
    return build_app(make_artifact(), base_path="/v1/models/toy")


def predict(app: ModelApp, body: bytes) -> tuple[int, Any]:
    status, out = app.predict(body)
    return status, json.loads(out)


def test_predict_body_carries_predictions_and_model(app: ModelApp) -> None:
    status, out = predict(app, b'{"instances": [{"a": 1, "b": 1}]}')
    assert status == 200
    assert out == {"predictions": [{"value": 1.5}], "model": {"name": "toy", "version": "3"}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b'{"instances": [{"a": NaN, "b": 1}]}', "body"),
        (b"\xff\xfe", "body"),
        (b"[]", "instances"),
        (b"{}", "instances"),
        (b'{"instances": []}', "instances"),
        (b'{"instances": {"a": 1}}', "instances"),
        (b'{"instances": [{"a": 1, "b": "x"}]}', "instances[0].b"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(app: ModelApp, body: bytes, field: str) -> None:
    status, out = predict(app, body)
    assert status == 400
    assert out["error"]["field"] == field and out["error"]["status"] == "INVALID_ARGUMENT"
    assert field in out["error"]["message"] or field == "body"


def test_predictor_bugs_are_500_without_internals(make_artifact: Any) -> None:
    app = build_app(make_artifact(predictor="serving_support:Failing"))
    status, out = predict(app, b'{"instances": [{"a": 1}]}')
    assert status == 500 and "ZeroDivision" not in out["error"]["message"]
    status, out = predict(app, b'{"instances": [{"bad": true}]}')
    assert (status, out["error"]["field"]) == (400, "instances[0].bad")
    wrong = build_app(make_artifact(predictor="serving_support:WrongCount"))
    for body in (b'{"instances": [{"a": 1}]}', b'{"instances": [{"a": 1}, {"a": 2}]}'):
        status, out = predict(wrong, body)
        assert status == 500 and "wrong number" in out["error"]["message"]
