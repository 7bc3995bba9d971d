"""Fixtures of the model-server tests: the example model's artifact and a running server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from serving_support import ServerProcess, linear_manifest, start_server

from mlplane.examples.sentiment.train import train
from mlplane.serving.artifact import write_artifact


@pytest.fixture(scope="session")
def sentiment_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("models") / "sentiment", progress=lambda line: None)


@pytest.fixture(scope="module")
def server(sentiment_artifact: Path) -> Iterator[ServerProcess]:
    srv = start_server(sentiment_artifact, "--base-path", "/v1/models/sentiment")
    yield srv
    srv.kill()


@pytest.fixture
def make_artifact(tmp_path: Path) -> Any:
    """make_artifact(**manifest overrides) -> directory artifact of a toy linear model."""
    count = 0

    def make(**overrides: Any) -> Path:
        nonlocal count
        count += 1
        return write_artifact(tmp_path / f"model-{count}", linear_manifest(**overrides))

    return make
