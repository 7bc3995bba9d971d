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
        }
    )
    return env
