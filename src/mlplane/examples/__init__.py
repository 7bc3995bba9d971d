"""Example models that ship with mlplane (the quickstart trains and serves them)."""
