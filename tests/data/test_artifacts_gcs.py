"""The Cloud Storage backend, through google-cloud-storage, against gcp-storage-emulator started
in-process on 127.0.0.1 (STORAGE_EMULATOR_HOST). Skipped when either is not installed:
`pip install google-cloud-storage gcp-storage-emulator`."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlplane.data.artifacts import ArtifactStore, ObjectNotFound, PreconditionFailed
from mlplane.errors import PermissionDenied, TransientError
from tests.data.conftest_artifacts import BUCKET, ROOT, make_project, reference_crc32c

storage = pytest.importorskip(
    "google.cloud.storage",
    reason="google-cloud-storage is not installed (the gcs extra)",
    exc_type=ImportError,
)
emulator = pytest.importorskip(
    "gcp_storage_emulator.server",
    reason="gcp-storage-emulator is not installed",
    exc_type=ImportError,
)
OCTET = "application/octet-stream"


@pytest.fixture(scope="module")
def emulator_host() -> Iterator[str]:
    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    server = emulator.create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._api._httpd.server_port}"
    finally:
        server.stop()


@pytest.fixture
def gcs(emulator_host: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlplane.data.artifacts.gcs import GcsBackend

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator_host)
    backend = GcsBackend("acme-ml")
    for blob in backend.client.list_blobs(BUCKET):
        blob.delete()
    return backend


def test_write_read_metadata_match_independent_checksums(gcs: Any) -> None:
    data = bytes(range(256)) * 513
    meta = gcs.write(
        BUCKET, "runs/1/model.pt", io.BytesIO(data), content_type=OCTET, if_generation_match=None
    )
    assert meta.size == len(data)
    assert meta.md5_hash == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert meta.crc32c == base64.b64encode(reference_crc32c(data).to_bytes(4, "big")).decode()
    assert gcs.stat(BUCKET, "runs/1/model.pt") == meta
    buf = io.BytesIO()
    assert gcs.read(BUCKET, "runs/1/model.pt", buf).generation == meta.generation
    assert buf.getvalue() == data


def test_generations_list_and_delete(gcs: Any) -> None:
    put = lambda name, data: gcs.write(  # noqa: E731
        BUCKET, name, io.BytesIO(data), content_type="text/plain", if_generation_match=None
    )
    g1 = put("runs/1/m", b"1").generation
    g2 = put("runs/1/m", b"2").generation
    assert g2 > g1
    put("runs/2/m", b"x")
    put("top", b"t")
    root = gcs.list(BUCKET, "", "/")
    assert [m.name for m in root.objects] == ["top"] and root.prefixes == ("runs/",)
    assert gcs.list(BUCKET, "runs/", "/").prefixes == ("runs/1/", "runs/2/")
    assert [m.name for m in gcs.list(BUCKET, "runs/", None).objects] == ["runs/1/m", "runs/2/m"]
    gcs.delete(BUCKET, "top", if_generation_match=None)
    with pytest.raises(ObjectNotFound, match=f"gs://{BUCKET}/top"):
        gcs.stat(BUCKET, "top")
    with pytest.raises(ObjectNotFound):
        gcs.read(BUCKET, "nope", io.BytesIO())


def test_store_on_gcs_authorizes_and_round_trips(
    gcs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tmp_path, monkeypatch)
    training = ArtifactStore.open(project, "training", gcs)
    alice = ArtifactStore.open(project, "alice@acme.com", gcs)
    training.write_bytes(f"{ROOT}/runs/9/model.pt", b"weights")
    assert alice.read_bytes(f"{ROOT}/runs/9/model.pt") == b"weights"
    with pytest.raises(PermissionDenied, match="mlplane ci trigger train"):
        alice.write_bytes(f"{ROOT}/runs/9/other.pt", b"x")
    with pytest.raises(ObjectNotFound):
        gcs.stat(BUCKET, "runs/9/other.pt")


@pytest.fixture
def gcs_enforcing(emulator_host: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The backend through a shim that enforces generation preconditions as Cloud Storage does
    (tests/data/gcs_preconditions.py); the emulator alone ignores them."""
    from mlplane.data.artifacts.gcs import GcsBackend
    from tests.data.gcs_preconditions import precondition_shim

    port = int(emulator_host.rsplit(":", 1)[1])
    with precondition_shim(port) as (url, rejected):
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        backend = GcsBackend("acme-ml")
        for blob in backend.client.list_blobs(BUCKET):
            blob.delete()
        backend.rejected = rejected
        yield backend


def test_preconditions_are_sent_and_a_failed_one_is_mapped(gcs_enforcing: Any) -> None:
    gcs = gcs_enforcing
    first = gcs.write(BUCKET, "p", io.BytesIO(b"1"), content_type=OCTET, if_generation_match=0)
    with pytest.raises(PreconditionFailed, match=f"gs://{BUCKET}/p"):
        gcs.write(BUCKET, "p", io.BytesIO(b"2"), content_type=OCTET, if_generation_match=0)
    buf = io.BytesIO()
    gcs.read(BUCKET, "p", buf)
    assert buf.getvalue() == b"1"  # the rejected write had no effect
    second = gcs.write(
        BUCKET, "p", io.BytesIO(b"3"), content_type=OCTET, if_generation_match=first.generation
    )
    assert second.generation > first.generation
    with pytest.raises(PreconditionFailed):  # a stale generation: someone wrote since
        gcs.delete(BUCKET, "p", if_generation_match=first.generation)
    gcs.delete(BUCKET, "p", if_generation_match=second.generation)
    with pytest.raises(ObjectNotFound):
        gcs.stat(BUCKET, "p")
    assert len(gcs.rejected) == 2


def test_api_errors_are_mapped_at_the_boundary() -> None:
    from google.api_core import exceptions as gexc

    from mlplane.data.artifacts.gcs import GcsBackend

    class Blob:
        def __init__(self, exc: Exception) -> None:
            self.exc = exc

        def upload_from_file(self, *args: Any, **kwargs: Any) -> None:
            raise self.exc

    class Client:
        def __init__(self, exc: Exception) -> None:
            self.exc = exc

        def bucket(self, name: str) -> Any:
            exc = self.exc
            return type("B", (), {"blob": lambda self, n: Blob(exc)})()

    cases = [
        (gexc.PreconditionFailed("412"), PreconditionFailed),
        (gexc.Forbidden("403"), PermissionDenied),
        (gexc.ServiceUnavailable("503"), TransientError),
        (gexc.NotFound("404"), ObjectNotFound),
    ]
    for raised, expected in cases:
        backend = GcsBackend("acme-ml", client=Client(raised))
        with pytest.raises(expected, match=f"gs://{BUCKET}/o"):
            backend.write(BUCKET, "o", io.BytesIO(b""), content_type=OCTET, if_generation_match=0)


def test_a_dry_run_shows_the_calls_the_client_library_makes(
    gcs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `artifacts cp|rm --dry-run` prints (artifacts/requests.py) is what
    google-cloud-storage sends for the backend's write and delete: recorded at its HTTP
    session, against the emulator."""
    import json

    from mlplane.data.artifacts import requests

    sent: list[tuple[str, str, dict[str, str], Any]] = []
    http = gcs.client._http
    real = http.request

    def recording(method: str, url: str, *args: Any, **kw: Any) -> Any:
        sent.append((method, url, dict(kw.get("headers") or {}), kw.get("data")))
        return real(method, url, *args, **kw)

    monkeypatch.setattr(http, "request", recording)
    data = bytes(range(256)) * 9
    name = "dry/a b~c.bin"
    meta = gcs.write(BUCKET, name, io.BytesIO(data), content_type=OCTET, if_generation_match=0)
    post, put = requests.upload(
        BUCKET, name, content_type=OCTET, if_generation_match=0, size=len(data), source="x",
        md5=meta.md5_hash, crc32c=meta.crc32c,
    )  # fmt: skip
    (m1, url1, h1, body1), (m2, _, h2, _), *reloads = sent
    assert (m1, url1) == (post.http_method, post.url)
    assert json.loads(body1) == post.body
    assert h1["x-upload-content-type"] == dict(post.headers)["X-Upload-Content-Type"]
    assert m2 == put.http_method
    assert h2["content-range"] == dict(put.headers)["Content-Range"]
    assert h2["x-goog-hash"] == dict(put.headers)["X-Goog-Hash"]
    assert all(m == "GET" for m, *_ in reloads)
    sent.clear()
    gcs.delete(BUCKET, name, if_generation_match=meta.generation)
    [(method, url, _, _)] = sent
    expected = requests.delete(BUCKET, name, if_generation_match=meta.generation)
    assert (method, url) == (expected.http_method, expected.url)


def test_a_dry_run_copy_on_cloud_storage_writes_nothing(
    gcs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator_host: str
) -> None:
    from mlplane.apis.request import DryRunLog

    project = make_project(tmp_path, monkeypatch)
    src = tmp_path / "model.pt"
    src.write_bytes(b"weights" * 10)
    training = ArtifactStore.open(project, "training", gcs)
    log = DryRunLog("serviceAccount:training")
    training.rehearse_copy(str(src), f"{ROOT}/runs/dry/", log, if_generation_match=0)
    post, put = log.requests
    assert post.url.startswith(f"{emulator_host}/upload/storage/v1/b/{BUCKET}/o?")
    assert post.body == {"name": "runs/dry/model.pt"}
    assert put.media is not None and put.media.startswith(f"<70 bytes from {src}, md5 ")
    assert "artifacts backend" not in log.render()  # it is Cloud Storage itself
    alice = ArtifactStore.open(project, "alice@acme.com", gcs)
    with pytest.raises(PermissionDenied, match="mlplane ci trigger train"):
        alice.rehearse_copy(str(src), f"{ROOT}/runs/dry/", DryRunLog())
    assert [b.name for b in gcs.client.list_blobs(BUCKET)] == []
