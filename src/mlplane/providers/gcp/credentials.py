"""Application Default Credentials for Google's own endpoints (`provider = "gcp"`); the class
lives with the data SDK's cloud backends (which need it too) and imports google-auth lazily."""

from __future__ import annotations

from mlplane.data.adc.gcp_credentials import GoogleAuthCredentials

__all__ = ["GoogleAuthCredentials"]
