"""The local backend: generations, preconditions, checksums, listing, deletion, atomicity."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from pathlib import Path

import pytest

from mlplane.data.artifacts import ObjectNotFound, PreconditionFailed
from mlplane.data.artifacts import local as local_module
from mlplane.data.artifacts.local import LocalBackend
from mlplane.data.artifacts.model import Digest
from tests.data.conftest_artifacts import BUCKET, files_under, make_project, reference_crc32c

OCTET = "application/octet-stream"


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalBackend:
    return LocalBackend.for_project(make_project(tmp_path, monkeypatch))


def put(b: LocalBackend, name: str, data: bytes, match: int | None = None) -> int:
    meta = b.write(BUCKET, name, io.BytesIO(data), content_type=OCTET, if_generation_match=match)
    return meta.generation


def get(b: LocalBackend, name: str) -> bytes:
    buf = io.BytesIO()
    b.read(BUCKET, name, buf)
    return buf.getvalue()


def test_reference_crc32c_known_vector() -> None:
    assert reference_crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize("size", [0, 1, 4095, 70_001])
def test_checksums_match_independent_computation(backend: LocalBackend, size: int) -> None:
    data = bytes((i * 7919 + i // 251) % 256 for i in range(size))
    meta = backend.write(
        BUCKET, "m/blob", io.BytesIO(data), content_type=OCTET, if_generation_match=None
    )
    assert meta.size == size
    assert meta.md5_hash == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert meta.crc32c == base64.b64encode(reference_crc32c(data).to_bytes(4, "big")).decode()
    assert backend.stat(BUCKET, "m/blob") == meta
    assert get(backend, "m/blob") == data


def test_digest_chunked_equals_whole() -> None:
    data = bytes(range(256)) * 1000
    whole, parts = Digest(), Digest()
    whole.update(data)
    for i in range(0, len(data), 777):
        parts.update(data[i : i + 777])
    assert (whole.md5_hash, whole.crc32c, whole.size) == (parts.md5_hash, parts.crc32c, parts.size)


def test_generations_are_monotonic_per_object(backend: LocalBackend) -> None:
    gens = [put(backend, "a/model.pt", f"v{i}".encode()) for i in range(5)]
    assert gens == sorted(set(gens))
    assert get(backend, "a/model.pt") == b"v4"
    backend.delete(BUCKET, "a/model.pt", if_generation_match=None)
    assert put(backend, "a/model.pt", b"again") > gens[-1]
    # only the live generation's bytes are kept
    assert [f for f in files_under(backend.root / BUCKET) if "#g" in f] == [
        f"a/model.pt#g{backend.stat(BUCKET, 'a/model.pt').generation}"
    ]


def test_if_generation_match_zero_means_must_not_exist(backend: LocalBackend) -> None:
    g1 = put(backend, "x", b"first", match=0)
    with pytest.raises(PreconditionFailed) as info:
        put(backend, "x", b"second", match=0)
    assert info.value.current == g1
    assert "gs://acme-ml-mlplane-artifacts/x" in str(info.value)
    assert "412" in str(info.value)
    assert get(backend, "x") == b"first"


def test_if_generation_match_current_generation(backend: LocalBackend) -> None:
    g1 = put(backend, "x", b"one")
    g2 = put(backend, "x", b"two", match=g1)
    with pytest.raises(PreconditionFailed):
        put(backend, "x", b"stale", match=g1)  # a lost update, refused
    with pytest.raises(PreconditionFailed):
        put(backend, "never", b"z", match=g2)  # N > 0 on an absent object
    assert get(backend, "x") == b"two"
    with pytest.raises(PreconditionFailed):
        backend.delete(BUCKET, "x", if_generation_match=g1)
    backend.delete(BUCKET, "x", if_generation_match=g2)
    with pytest.raises(ObjectNotFound):
        backend.stat(BUCKET, "x")


def test_concurrent_create_only_one_wins(backend: LocalBackend) -> None:
    results: list[str] = []

    def writer(i: int) -> None:
        try:
            put(backend, "race", f"w{i}".encode(), match=0)
            results.append("ok")
        except PreconditionFailed:
            results.append("412")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["412"] * 7 + ["ok"]


def test_list_prefix_and_delimiter(backend: LocalBackend) -> None:
    for name in ["runs/1/model.pt", "runs/1/metrics.json", "runs/2/model.pt", "runs", "top.txt"]:
        put(backend, name, name.encode())
    root = backend.list(BUCKET, "", "/")
    assert [m.name for m in root.objects] == ["runs", "top.txt"]
    assert root.prefixes == ("runs/",)
    runs = backend.list(BUCKET, "runs/", "/")
    assert runs.objects == () and runs.prefixes == ("runs/1/", "runs/2/")
    flat = backend.list(BUCKET, "runs/1", None)
    assert [m.name for m in flat.objects] == ["runs/1/metrics.json", "runs/1/model.pt"]
    assert backend.list("acme-ml-other-bucket", "", "/").objects == ()


def test_odd_names_round_trip(backend: LocalBackend) -> None:
    for name in ["a b/c#d%e?f", "ünï/cødé", "a", "a/b"]:
        put(backend, name, name.encode())
    for name in ["a b/c#d%e?f", "ünï/cødé", "a", "a/b"]:
        assert get(backend, name) == name.encode()
    assert sorted(m.name for m in backend.list(BUCKET, "", None).objects) == sorted(
        ["a b/c#d%e?f", "ünï/cødé", "a", "a/b"]
    )


def test_read_and_delete_missing(backend: LocalBackend) -> None:
    with pytest.raises(ObjectNotFound, match="gs://acme-ml-mlplane-artifacts/nope"):
        get(backend, "nope")
    with pytest.raises(ObjectNotFound):
        backend.delete(BUCKET, "nope", if_generation_match=None)


def test_delete_prunes_empty_directories(backend: LocalBackend) -> None:
    put(backend, "deep/er/obj", b"x")
    backend.delete(BUCKET, "deep/er/obj", if_generation_match=None)
    assert not (backend.root / BUCKET / "deep").exists()


@pytest.mark.parametrize("fail_on", [1, 2], ids=["before-data-rename", "before-meta-commit"])
def test_crash_mid_write_leaves_no_partial_object(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch, fail_on: int
) -> None:
    calls = {"n": 0}
    real = local_module._rename

    def crashing_rename(src: Path, dst: Path) -> None:
        calls["n"] += 1
        if calls["n"] == fail_on:
            raise OSError("simulated crash")
        real(src, dst)

    # a new object: nothing visible afterwards
    monkeypatch.setattr(local_module, "_rename", crashing_rename)
    with pytest.raises(OSError, match="simulated crash"):
        put(backend, "new/obj", b"partial" * 1000)
    monkeypatch.setattr(local_module, "_rename", real)
    with pytest.raises(ObjectNotFound):
        backend.stat(BUCKET, "new/obj")
    assert backend.list(BUCKET, "", None).objects == ()
    assert files_under(backend.root / BUCKET) == []

    # an existing object: the previous generation stays live and intact
    g1 = put(backend, "old/obj", b"good")
    calls["n"] = 0
    monkeypatch.setattr(local_module, "_rename", crashing_rename)
    with pytest.raises(OSError):
        put(backend, "old/obj", b"bad")
    monkeypatch.setattr(local_module, "_rename", real)
    assert backend.stat(BUCKET, "old/obj").generation == g1
    assert get(backend, "old/obj") == b"good"
    assert files_under(backend.root / BUCKET) == [f"old/obj#g{g1}", "old/obj#meta"]


def test_pure_python_crc32c_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlplane.data.artifacts import model

    data = bytes(range(256)) * 40
    monkeypatch.setattr(model, "_FAST", None)
    monkeypatch.setattr(model, "_LOOKED_UP", True)
    pure = Digest()
    pure.update(data[:1000])
    pure.update(data[1000:])
    assert pure.crc32c == base64.b64encode(reference_crc32c(data).to_bytes(4, "big")).decode()


def test_readers_see_whole_generations_during_overwrites(backend: LocalBackend) -> None:
    payloads = [bytes([i]) * (50_000 + i) for i in range(6)]
    put(backend, "hot", payloads[0])
    stop = threading.Event()
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            buf = _Hashing()
            meta = backend.read(BUCKET, "hot", buf)  # type: ignore[arg-type]
            if buf.data not in payloads or buf.digest.mismatch(meta):
                errors.append(f"torn read at generation {meta.generation}")

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(30):
        put(backend, "hot", payloads[i % len(payloads)])
    stop.set()
    for t in threads:
        t.join()
    assert errors == []


class _Hashing:
    def __init__(self) -> None:
        self.data = b""
        self.digest = Digest()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        self.digest.update(chunk)
        return len(chunk)
