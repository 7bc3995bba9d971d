"""The server process over real sockets: routes, errors, keep-alive, pipelining, framing."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from serving_support import (
    POSITIVE_INSTANCE,
    Reader,
    ServerProcess,
    call,
    connect,
    request_bytes,
    start_server,
)

from mlplane.serving.artifact import load_artifact

BASE = "/v1/models/sentiment"
POSITIVE = POSITIVE_INSTANCE
NEGATIVE = {**POSITIVE, "positive_words": 0, "negative_words": 2, "exclamations": 0}


def expected_score(manifest: dict[str, Any], instance: Mapping[str, float]) -> float:
    z = manifest["bias"] + sum(
        w * instance[f] for f, w in zip(manifest["features"], manifest["weights"], strict=True)
    )
    return 1 / (1 + math.exp(-z))


@pytest.mark.parametrize("path", ["/healthz", f"{BASE}/healthz", "/healthz?probe=1"])
def test_healthz_names_the_loaded_model(server: ServerProcess, path: str) -> None:
    r = call(server.port, "GET", path)
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["status"] == "SERVING"
    assert body["model"]["name"] == "sentiment" and body["model"]["version"] == "1.0.7"


def test_head_healthz_sends_headers_only(server: ServerProcess) -> None:
    with connect(server.port) as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes("HEAD", "/healthz"))
        r = reader.response(head_only=True)
        assert r.status == 200 and int(r.headers["content-length"]) > 0
        sock.sendall(request_bytes("GET", "/healthz"))  # nothing stray between the two
        assert reader.response().json()["status"] == "SERVING"


@pytest.mark.parametrize("path", ["/predict", f"{BASE}/predict"])
def test_predict_matches_the_model_math(
    server: ServerProcess, sentiment_artifact: Path, path: str
) -> None:
    manifest = dict(load_artifact(sentiment_artifact).manifest)
    r = call(server.port, "POST", path, {"instances": [POSITIVE, NEGATIVE]})
    assert r.status == 200
    out = r.json()
    assert out["model"] == {"name": "sentiment", "version": "1.0.7"}
    scores = [p["score"] for p in out["predictions"]]
    assert scores == pytest.approx([expected_score(manifest, x) for x in (POSITIVE, NEGATIVE)])
    assert [p["label"] for p in out["predictions"]] == ["positive", "negative"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"instances": [{**POSITIVE, "length": "long"}]}, "instances[0].length"),
        ({"instances": [POSITIVE, {k: v for k, v in POSITIVE.items() if k != "negations"}]},
         "instances[1].negations"),
        ({"instances": [{**POSITIVE, "lenght": 3}]}, "instances[0].lenght"),
        ({"inputs": [POSITIVE]}, "instances"),
    ],
)  # fmt: skip
def test_bad_input_is_400_naming_the_field(server: ServerProcess, payload: Any, field: str) -> None:
    r = call(server.port, "POST", f"{BASE}/predict", payload)
    assert r.status == 400
    err = r.json()["error"]
    assert err["field"] == field and field in err["message"]


def test_unknown_path_is_404_and_wrong_method_405(server: ServerProcess) -> None:
    r = call(server.port, "GET", "/v1/models/other/predict")
    assert r.status == 404 and r.json()["error"]["code"] == 404
    r = call(server.port, "GET", f"{BASE}/predict")
    assert r.status == 405 and r.headers["allow"] == "POST"
    r = call(server.port, "POST", "/healthz", {})
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD"


def test_keep_alive_serves_many_requests_on_one_connection(server: ServerProcess) -> None:
    body = json.dumps({"instances": [POSITIVE]}).encode()
    with connect(server.port) as sock:
        reader = Reader(sock)
        started = time.perf_counter()
        for _ in range(50):
            sock.sendall(request_bytes("POST", f"{BASE}/predict", body))
            r = reader.response()
            assert r.status == 200 and "connection" not in r.headers
        elapsed = time.perf_counter() - started
    # Nagle + delayed ACK would cost ~40 ms a round trip (2 s here): TCP_NODELAY, one write each.
    assert elapsed < 1.0, f"50 keep-alive round trips took {elapsed:.2f} s"


def test_pipelined_requests_are_answered_in_order(server: ServerProcess) -> None:
    body = json.dumps({"instances": [NEGATIVE]}).encode()
    burst = (
        request_bytes("POST", "/predict", body)
        + request_bytes("GET", "/healthz")
        + request_bytes("GET", "/nope")
    )
    with connect(server.port) as sock:
        sock.sendall(burst)
        reader = Reader(sock)
        statuses = [reader.response().status for _ in range(3)]
    assert statuses == [200, 200, 404]


def test_connection_close_and_http10_close_after_the_response(server: ServerProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(request_bytes("GET", "/healthz", headers={"Connection": "close"}))
        reader = Reader(sock)
        assert reader.response().headers["connection"] == "close"
        assert reader.closed()
    with connect(server.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        reader = Reader(sock)
        assert reader.response().status == 200 and reader.closed()
    with connect(server.port) as sock:  # HTTP/1.0 keep-alive on request
        reader = Reader(sock)
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert reader.response().headers["connection"] == "keep-alive"


def test_chunked_body_and_expect_continue(server: ServerProcess) -> None:
    body = json.dumps({"instances": [POSITIVE]}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:10], body[10:])) + b"0\r\n\r\n"
    with connect(server.port) as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes("POST", "/predict", headers={"Transfer-Encoding": "chunked"}))
        sock.sendall(chunks)
        assert reader.response().json()["predictions"][0]["label"] == "positive"
        head = request_bytes("POST", "/predict", headers={"Expect": "100-continue"})
        sock.sendall(head.replace(b"Content-Length: 0", b"Content-Length: %d" % len(body)))
        assert reader.response().status == 100
        sock.sendall(body)
        assert reader.response().status == 200


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET /healthz HTTP/2.0\r\n\r\n", 505),
        (b"POST /predict HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /predict HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST /predict HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nX-Long: " + b"a" * 70_000, 431),
    ],
)
def test_malformed_requests_get_an_error_and_a_close(
    server: ServerProcess, raw: bytes, status: int
) -> None:
    with connect(server.port) as sock:
        sock.sendall(raw)
        reader = Reader(sock)
        r = reader.response()
        assert r.status == status and r.headers["connection"] == "close"
        assert reader.closed()


@pytest.fixture(scope="module")
def small_server(sentiment_artifact: Path) -> Any:
    srv = start_server(sentiment_artifact, "--max-body-bytes", "1000")
    yield srv
    srv.kill()


def test_bodies_over_the_limit_are_413_before_being_read(small_server: ServerProcess) -> None:
    big = {"instances": [POSITIVE] * 20}
    assert len(json.dumps(big)) > 1000
    r = call(small_server.port, "POST", "/predict", big)
    assert r.status == 413 and r.json()["error"]["status"] == "PAYLOAD_TOO_LARGE"
    assert call(small_server.port, "POST", "/predict", {"instances": [POSITIVE]}).status == 200
    with connect(small_server.port) as sock:  # chunked: counted as it arrives
        sock.sendall(request_bytes("POST", "/predict", headers={"Transfer-Encoding": "chunked"}))
        sock.sendall(b"%x\r\n%s\r\n" % (1500, b" " * 1500))
        reader = Reader(sock)
        assert reader.response().status == 413 and reader.closed()
