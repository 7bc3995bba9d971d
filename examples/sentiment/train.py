"""Train the sentiment example: `python examples/sentiment/train.py --out DIR`.

The code ships inside mlplane (`mlplane.examples.sentiment`) so that `mlplane quickstart` can
train it from an installed package; this script is the same entry point, for reading and running
from a checkout.
"""

from __future__ import annotations

import sys

from mlplane.examples.sentiment.train import main

if __name__ == "__main__":
    sys.exit(main())
