"""The example model: deterministic training, a useful model, a servable artifact."""

from __future__ import annotations

import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serving_support import REPO, server_env

from mlplane.examples.sentiment.data import FEATURES, featurize, generate
from mlplane.examples.sentiment.text_predictor import TextSentiment
from mlplane.examples.sentiment.train import fit_logistic, solve, train
from mlplane.serving.artifact import load_artifact
from mlplane.serving.linear import LinearModel
from mlplane.serving.predictor import load_predictor


def test_training_is_fast_deterministic_and_useful(tmp_path: Path) -> None:
    lines: list[str] = []
    started = time.perf_counter()
    a = load_artifact(train(tmp_path / "a", progress=lines.append))
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"training took {elapsed:.2f} s"
    assert lines[0].startswith("generating") and lines[-1].startswith("wrote")
    assert any(line.startswith("iteration") for line in lines)
    b = load_artifact(train(tmp_path / "b", progress=lines.append))
    c = load_artifact(train(tmp_path / "c", seed=8, progress=lines.append))
    assert (
        a.manifest["weights"] == b.manifest["weights"] and a.manifest["bias"] == b.manifest["bias"]
    )
    assert a.manifest["weights"] != c.manifest["weights"]
    assert a.manifest["metrics"]["accuracy"] > 0.75
    weights = dict(zip(a.manifest["features"], a.manifest["weights"], strict=True))
    assert weights["positive_words"] > 0 > weights["negative_words"]


def test_newton_solver_recovers_a_known_model() -> None:
    assert solve([[2.0, 1.0], [1.0, 3.0]], [3.0, 5.0]) == pytest.approx([0.8, 1.4])
    assert solve([[0.0, 1.0], [1.0, 0.0]], [2.0, 3.0]) == pytest.approx([3.0, 2.0])  # pivoting
    # Positive words raise the odds of a positive review, negative words lower them.
    xs = [[featurize(r.text)[f] for f in FEATURES] for r in generate(800, seed=1)]
    ys = [1.0 if r.positive else 0.0 for r in generate(800, seed=1)]
    weights, _ = fit_logistic(xs, ys, progress=lambda line: None)
    assert weights[0] > 0.5 and weights[1] < -0.5


def test_the_trained_model_reads_reviews(tmp_path: Path) -> None:
    plain = load_predictor(load_artifact(train(tmp_path / "plain", progress=lambda s: None)))
    assert isinstance(plain, LinearModel)
    art = load_artifact(train(tmp_path / "text", text_input=True, progress=lambda s: None))
    text = load_predictor(art)
    assert isinstance(text, TextSentiment)
    out = text.predict(
        [
            {"text": "A wonderful, brilliant film. Loved it!"},
            {"text": "boring plot, awful, a waste"},
        ]
    )
    assert [p["label"] for p in out] == ["positive", "negative"]


def test_train_entrypoint_prints_progress_promptly(tmp_path: Path) -> None:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlplane.examples.sentiment.train", "--out", str(tmp_path / "m")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env(),
        cwd=REPO,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    first = proc.stdout.readline() if ready else ""
    first_line_s = time.perf_counter() - started
    rest, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert first.startswith("generating") and first_line_s < 2.0
    assert "evaluation: accuracy" in rest and f"wrote {tmp_path / 'm'}" in rest
    assert load_artifact(tmp_path / "m").name == "sentiment"
