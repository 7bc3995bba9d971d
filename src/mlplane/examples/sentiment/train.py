"""Train the sentiment model and write its artifact (pure Python, well under a second).

    python -m mlplane.examples.sentiment.train --out DIR [--text-input] [--seed N]

Logistic regression fitted by Newton's method (IRLS, a small ridge on the weights) on synthetic
reviews from `data.py`; evaluated on a held-out set; written as an `mlplane.linear/v1` artifact
(model.json + checksums.json). With `--text-input` the artifact names the custom predictor
`mlplane.examples.sentiment.text_predictor:TextSentiment`, which takes `{"text": "..."}` instances.
Progress goes to stdout, one line per step, flushed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from mlplane.examples.sentiment.data import FEATURES, featurize, generate
from mlplane.serving.artifact import FORMAT_LINEAR, write_artifact
from mlplane.serving.linear import sigmoid

TEXT_PREDICTOR = "mlplane.examples.sentiment.text_predictor:TextSentiment"
LABELS = ["negative", "positive"]


def _say(line: str) -> None:
    print(line, flush=True)


def solve(a: list[list[float]], b: list[float]) -> list[float]:
    """x with a x = b (Gaussian elimination, partial pivoting); a and b are consumed."""
    n = len(b)
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[piv] = a[piv], a[col]
        b[col], b[piv] = b[piv], b[col]
        for r in range(col + 1, n):
            f = a[r][col] / a[col][col]
            if f:
                row, top = a[r], a[col]
                for c in range(col, n):
                    row[c] -= f * top[c]
                b[r] -= f * b[col]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (b[r] - sum(a[r][c] * x[c] for c in range(r + 1, n))) / a[r][r]
    return x


def log_loss(p: float, y: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def fit_logistic(
    xs: Sequence[Sequence[float]],
    ys: Sequence[float],
    *,
    ridge: float = 1e-3,
    max_iterations: int = 25,
    progress: Callable[[str], None] = _say,
) -> tuple[list[float], float]:
    """(weights, bias) minimising mean log loss + ridge/2 * |weights|^2."""
    rows = [[*x, 1.0] for x in xs]
    d, n = len(rows[0]), len(rows)
    beta = [0.0] * d
    for it in range(1, max_iterations + 1):
        grad = [0.0] * d
        hess = [[0.0] * d for _ in range(d)]
        loss = 0.0
        for x, y in zip(rows, ys, strict=True):
            p = sigmoid(sum(b * v for b, v in zip(beta, x, strict=True)))
            loss += log_loss(p, y)
            r, w = p - y, p * (1 - p)
            for j in range(d):
                grad[j] += r * x[j]
                hj, wx = hess[j], w * x[j]
                for k in range(j + 1):
                    hj[k] += wx * x[k]
        for j in range(d):
            for k in range(j):
                hess[k][j] = hess[j][k]
            if j < d - 1:
                grad[j] += ridge * n * beta[j]
                hess[j][j] += ridge * n
        step = solve(hess, grad)
        beta = [b - s for b, s in zip(beta, step, strict=True)]
        progress(f"iteration {it}: mean log loss {loss / n:.4f}")
        if max(abs(s) for s in step) < 1e-7:
            break
    return beta[:-1], beta[-1]


def train(
    out_dir: Path | str,
    *,
    seed: int = 7,
    n_train: int = 1500,
    n_eval: int = 500,
    text_input: bool = False,
    progress: Callable[[str], None] = _say,
) -> Path:
    """Train, evaluate and write the artifact to `out_dir`; returns its path."""
    started = time.perf_counter()
    progress(f"generating {n_train} training and {n_eval} evaluation reviews (seed {seed})")
    reviews = generate(n_train + n_eval, seed)
    xs = [[featurize(r.text)[f] for f in FEATURES] for r in reviews]
    ys = [1.0 if r.positive else 0.0 for r in reviews]
    progress(f"fitting logistic regression on {len(FEATURES)} features: {', '.join(FEATURES)}")
    weights, bias = fit_logistic(xs[:n_train], ys[:n_train], progress=progress)
    scores = [sigmoid(bias + sum(w * v for w, v in zip(weights, x, strict=True))) for x in xs]
    held = list(zip(scores[n_train:], ys[n_train:], strict=True))
    accuracy = sum((p >= 0.5) == (y == 1.0) for p, y in held) / n_eval
    loss = sum(log_loss(p, y) for p, y in held) / n_eval
    progress(f"evaluation: accuracy {accuracy:.3f}, mean log loss {loss:.4f}")
    manifest: dict[str, object] = {
        "format": FORMAT_LINEAR,
        "name": "sentiment",
        "version": f"1.0.{seed}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "features": list(FEATURES),
        "weights": [round(w, 12) for w in weights],
        "bias": round(bias, 12),
        "link": "logistic",
        "labels": LABELS,
        "metrics": {"accuracy": accuracy, "log_loss": loss, "eval_examples": n_eval},
        "training": {"seed": seed, "examples": n_train, "method": "newton-irls", "ridge": 1e-3},
    }
    if text_input:
        manifest["predictor"] = TEXT_PREDICTOR
    out = write_artifact(out_dir, manifest)
    progress(f"wrote {out} in {time.perf_counter() - started:.2f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m mlplane.examples.sentiment.train", description=__doc__
    )
    p.add_argument("--out", required=True, type=Path, help="artifact directory (or X.json)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--text-input", action="store_true", help="serve {'text': ...} instances")
    args = p.parse_args(argv)
    train(args.out, seed=args.seed, text_input=args.text_input)
    return 0


if __name__ == "__main__":
    sys.exit(main())
