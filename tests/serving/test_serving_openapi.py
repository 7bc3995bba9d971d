"""/openapi.json: a valid OpenAPI 2.0 document for Cloud Endpoints, under the base path."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from serving_support import POSITIVE_INSTANCE, call, server_cmd, server_env, start_server

from mlplane.serving.openapi import normalize_base_path, openapi_document, operation_prefix

BASE = "/v1/models/sentiment-v2"
HOST = "mlplane.endpoints.acme-ml.cloud.goog"


@pytest.fixture(scope="module")
def doc_and_port(sentiment_artifact: Path) -> Any:
    srv = start_server(
        sentiment_artifact,
        "--service", "sentiment-v2",
        "--base-path", BASE + "/",
        "--endpoints-service", HOST,
    )  # fmt: skip
    try:
        r = call(srv.port, "GET", f"{BASE}/openapi.json")
        assert r.status == 200
        yield r.json(), srv.port
    finally:
        srv.kill()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, item in doc["paths"].items() for m, op in item.items()]


def test_document_has_the_fields_endpoints_requires(doc_and_port: Any) -> None:
    doc, _ = doc_and_port
    assert doc["swagger"] == "2.0"
    assert doc["info"]["title"] and doc["info"]["version"] == "1.0.7"
    assert doc["host"] == HOST
    ops = operations(doc)
    assert {(p, m) for p, m, _ in ops} == {
        (f"{BASE}/predict", "post"),
        (f"{BASE}/healthz", "get"),
        (f"{BASE}/openapi.json", "get"),
    }
    ids = [op["operationId"] for _, _, op in ops]
    assert len(set(ids)) == len(ids) and all(i.startswith("sentimentV2") for i in ids)
    for _, _, op in ops:
        assert op["responses"]["200"]["description"]


def test_every_documented_path_is_served(doc_and_port: Any) -> None:
    doc, port = doc_and_port
    for path, method, _ in operations(doc):
        payload = {"instances": [POSITIVE_INSTANCE]} if method == "post" else None
        assert call(port, method.upper(), path, payload).status == 200, path
    assert call(port, "GET", "/openapi.json").json() == doc  # also without the prefix


def test_document_validates_against_the_endpoints_model_and_its_predict_path(
    doc_and_port: Any,
) -> None:
    """The control plane merges this document: it must parse as mlplane.model's OpenApiDocument,
    and its predict operation must be the one the revision bundle registers."""
    from mlplane.model.compute_endpoints import OpenApiDocument
    from mlplane.model.compute_revision import api_paths

    doc, _ = doc_and_port
    parsed = OpenApiDocument.model_validate(doc)
    change = api_paths("sentiment-v2", HOST)
    for path, item in change.paths.items():
        assert parsed.paths[path]["post"].operation_id == item["post"].operation_id


def test_operation_ids_differ_between_services() -> None:
    a = openapi_document(service="sentiment", base_path="/v1/models/sentiment", version="1")
    b = openapi_document(service="churn", base_path="/v1/models/churn", version="1")
    ids_a = {op["operationId"] for item in a["paths"].values() for op in item.values()}
    ids_b = {op["operationId"] for item in b["paths"].values() for op in item.values()}
    assert not ids_a & ids_b
    assert operation_prefix("fraud-score-v3") == "fraudScoreV3"


@pytest.mark.parametrize(
    ("given", "normal"),
    [("/v1/models/x/", "/v1/models/x"), ("/", ""), ("", ""), ("/a/b.c_d~e-f", "/a/b.c_d~e-f")],
)
def test_base_path_normalisation(given: str, normal: str) -> None:
    assert normalize_base_path(given) == normal


@pytest.mark.parametrize("bad", ["v1/models/x", "/v1/../x", "/v1/models x", "/v1?x=1"])
def test_bad_base_path_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="base path"):
        normalize_base_path(bad)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--base-path", "/v1/../etc"], "--base-path"),
        (["--service", "Sentiment_Model"], "--service"),
        (["--endpoints-service", "localhost"], "--endpoints-service"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    sentiment_artifact: Path, args: list[str], flag: str
) -> None:
    proc = subprocess.run(
        server_cmd(sentiment_artifact, "--port", "0", *args),
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=10,
    )
    assert proc.returncode == 2 and flag in proc.stderr and proc.stdout == ""
