"""The Secret Manager v1 calls the `gcp` secrets backend makes, as `--dry-run` prints them;
nothing here sends anything, and no value is ever part of what it returns.

The client library (google-cloud-secret-manager) sends them over gRPC
(`SecretManagerService.CreateSecret`, `AddSecretVersion`, `DisableSecretVersion`, ...); they are
shown in their REST form, which carries the same fields. A payload shows its size, never its
bytes, nor its CRC32C (a checksum of a short secret narrows a guess).
"""

from __future__ import annotations

import importlib.util

from mlplane.apis.request import Request

HOST = "https://secretmanager.googleapis.com"
GRPC = "sent over gRPC as SecretManagerService.{}; shown in its REST form"
VERBS = {"enabled": "enable", "disabled": "disable", "destroyed": "destroy"}


def _secret(project: str, name: str) -> str:
    return f"{HOST}/v1/projects/{project}/secrets/{name}"


def create(project: str, name: str) -> Request:
    """`CreateSecret` with automatic replication (what the backend creates)."""
    body: dict[str, object] = {"replication": {"automatic": {}}}
    return Request("POST", f"{HOST}/v1/projects/{project}/secrets?secretId={name}", body)


def add_version(project: str, name: str, size: int) -> Request:
    payload = {"data": f"<{size} bytes, base64-encoded: not shown>"}
    if importlib.util.find_spec("google_crc32c") is not None:  # the backend sends it then
        payload["dataCrc32c"] = "<CRC32C of the value: not shown>"
    return Request("POST", _secret(project, name) + ":addVersion", {"payload": payload})


def set_state(project: str, name: str, number: int, state: str) -> Request:
    url = f"{_secret(project, name)}/versions/{number}:{VERBS[state]}"
    return Request("POST", url, {})
