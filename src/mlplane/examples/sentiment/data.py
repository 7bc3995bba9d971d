"""Synthetic movie reviews, generated deterministically from a seed, and their features."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


POSITIVE = frozenset(
    _words("good great excellent love loved wonderful enjoyed brilliant fun superb")
)
NEGATIVE = frozenset(_words("bad awful boring hate hated terrible waste dull poor weak mess"))
NEGATIONS = frozenset(_words("not never no hardly"))
NEUTRAL = _words("the a movie film plot actors story ending scene it and was of music camera")
FEATURES = ("positive_words", "negative_words", "negations", "exclamations", "length")
_WORD = re.compile(r"[a-z']+|!")


@dataclass(frozen=True)
class Review:
    text: str
    positive: bool


def featurize(text: str) -> dict[str, float]:
    """The model's inputs for one review text (counts; length in words)."""
    tokens = _WORD.findall(text.lower())
    words = [t for t in tokens if t != "!"]
    return {
        "positive_words": float(sum(w in POSITIVE for w in words)),
        "negative_words": float(sum(w in NEGATIVE for w in words)),
        "negations": float(sum(w in NEGATIONS for w in words)),
        "exclamations": float(len(tokens) - len(words)),
        "length": float(len(words)),
    }


def generate(n: int, seed: int) -> list[Review]:
    """`n` reviews; the label is drawn first, the words lean its way (with noise and negations)."""
    rng = random.Random(seed)
    pos, neg = sorted(POSITIVE), sorted(NEGATIVE)
    reviews = []
    for _ in range(n):
        positive = rng.random() < 0.5
        lean, other = (pos, neg) if positive else (neg, pos)
        words = [rng.choice(NEUTRAL) for _ in range(rng.randint(4, 30))]
        words += [rng.choice(lean) for _ in range(rng.choice((0, 1, 2, 2, 3, 3)))]
        words += [rng.choice(other) for _ in range(rng.choice((0, 0, 0, 1, 1)))]
        if rng.random() < 0.2:  # "not bad", "never boring": a negated word of the other side
            words += [rng.choice(sorted(NEGATIONS)), rng.choice(other)]
        rng.shuffle(words)
        bangs = "!" * rng.choice((0, 0, 0, 1, 2 if positive else 1))
        reviews.append(Review(" ".join(words) + bangs, positive))
    return reviews
