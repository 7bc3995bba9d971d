"""A tiny sentiment model: synthetic reviews, a logistic regression, an mlplane.linear/v1 artifact.

python -m mlplane.examples.sentiment.train --out /tmp/sentiment
python -m mlplane.serving --artifact /tmp/sentiment --port 8080
"""
