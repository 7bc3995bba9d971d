"""The variables that make the real gcloud CLI talk to a project's endpoints as its caller."""

from __future__ import annotations

import os

from mlplane.workflows.session import Session


def gcloud_environment(session: Session) -> dict[str, str]:
    from mlplane.workflows import compose

    env = {"CLOUDSDK_CORE_PROJECT": session.project_id}
    if session.provider != "local":
        return env
    endpoints = session.platform.endpoints()
    env.update(endpoints.environment(session.project_id))
    # CLOUDSDK_AUTH_TOKEN_HOST stays: gcloud ignores it with a token file, and mlplane commands
    # run in the same shell find the agent's token endpoint by it.
    token = compose.access_token(session.api)
    directory = session.state_dir / "gcloud"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / "access-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    env.update(
        {
            "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(path),
            "CLOUDSDK_CONFIG": str(directory / "config"),  # leaves the user's gcloud alone
            "CLOUDSDK_COMPUTE_ZONE": session.zone,
            "CLOUDSDK_COMPUTE_REGION": session.region,
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_RUN_REGION": session.region,
            "CLOUDSDK_RUN_PLATFORM": "managed",
        }
    )
    # gcloud's `run` commands call a regional endpoint it derives by prefixing the host
    # (`us-central1-127.0.0.1:PORT`), which no resolver knows: gcloud sends its requests through
    # the agent as an HTTP proxy instead, and the agent answers those addressed to itself.
    port = endpoints.url("compute").split("//", 1)[-1].split("/", 1)[0].rpartition(":")[2]
    env.update(
        {"CLOUDSDK_PROXY_TYPE": "http", "CLOUDSDK_PROXY_ADDRESS": "127.0.0.1",
         "CLOUDSDK_PROXY_PORT": port}
    )  # fmt: skip
    return env
