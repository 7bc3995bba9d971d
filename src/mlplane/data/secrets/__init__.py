"""Secrets for workload code and the CLI: Secret Manager on GCP, an encrypted store locally.

    from mlplane.data.secrets import SecretValue, open_secrets

    secrets = open_secrets()                      # acting principal: see Caller.resolve
    key = secrets.get("openai-api-key").text()    # SecretValue prints as <redacted>
    secrets.set("openai-api-key", SecretValue(new_key))

Every call is authorized for the acting principal as GCP IAM would decide it.
"""

from mlplane.data.secrets.base import SecretBackend
from mlplane.data.secrets.service import Secrets, open_secrets
from mlplane.data.secrets.value import (
    SecretInfo,
    SecretNotFound,
    SecretValue,
    SecretVersion,
    check_name,
)

__all__ = [
    "SecretBackend",
    "SecretInfo",
    "SecretNotFound",
    "SecretValue",
    "SecretVersion",
    "Secrets",
    "check_name",
    "open_secrets",
]
