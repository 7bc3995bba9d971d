"""Where each API is served: every shipped API has gcloud's override variable; the local
agent's endpoints name only the APIs the agent serves."""

from __future__ import annotations

from mlplane.apis.discovery import AGENT_APIS, VERSIONS
from mlplane.apis.endpoints import GOOGLE_TOKEN_URI, Endpoints


def test_the_agent_endpoints_name_only_what_the_agent_serves() -> None:
    ends = Endpoints.agent("http://127.0.0.1:8123")
    assert set(ends.roots) == set(AGENT_APIS)
    env = ends.environment("acme-ml")
    assert "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE" in env
    assert "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM" not in env  # gcloud iam goes to Google
    assert ends.root("iam") == "https://iam.googleapis.com/"


def test_every_shipped_api_reads_its_override_variable() -> None:
    base = "http://127.0.0.1:9"
    env = {
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": f"{base}/storage/v1/",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM": f"{base}/",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER": f"{base}/",
    }
    ends = Endpoints.from_environment(env)
    assert ends is not None and not ends.is_google and ends.token_uri == GOOGLE_TOKEN_URI
    assert ends.root("storage") == ends.root("iam") == f"{base}/"
    assert ends.url("storage") == f"{base}/storage/v1/"
    assert {"storage", "iam", "cloudresourcemanager", "run"} <= set(VERSIONS)
