"""A revision's server answers under its service's prefix and under its own route's prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplane.errors import ConfigError
from mlplane.examples.sentiment.train import train
from mlplane.serving.app import Route, build_app


def test_aliases_answer_the_same_routes(tmp_path: Path) -> None:
    artifact = train(tmp_path / "m", progress=lambda *_: None)
    app = build_app(
        artifact,
        service="sentiment",
        base_path="/v1/models/sentiment",
        aliases=("/v1/revisions/sentiment-r1",),
    )
    assert app.routes[b"/v1/models/sentiment/predict"] is Route.PREDICT
    assert app.routes[b"/v1/revisions/sentiment-r1/predict"] is Route.PREDICT
    assert app.routes[b"/v1/revisions/sentiment-r1/healthz"] is Route.HEALTH
    assert b"/v1/revisions/sentiment-r2/predict" not in app.routes
    assert "/v1/revisions" not in str(app.openapi)


def test_bad_alias_names_the_flag(tmp_path: Path) -> None:
    artifact = train(tmp_path / "m", progress=lambda *_: None)
    with pytest.raises(ConfigError) as info:
        build_app(artifact, aliases=("no-slash",))
    assert "--alias" in str(info.value)
