"""gs:// URI parsing: anything that could climb out of its bucket is refused, naming the URI,
and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplane.data.artifacts import GsUri, InvalidUri, parse_gs_uri
from mlplane.errors import ConfigError
from tests.data.conftest_artifacts import BUCKET, files_under, make_project, store_for

BAD = [
    "gs://b/../x",
    "gs://acme-ml-mlplane-artifacts/../other/x",
    "gs://acme-ml-mlplane-artifacts/a/../../x",
    "gs://acme-ml-mlplane-artifacts/./x",
    "gs://acme-ml-mlplane-artifacts/a/..",
    "gs://acme-ml-mlplane-artifacts//etc/passwd",
    "gs://acme-ml-mlplane-artifacts/a//b",
    "gs:///x",
    "gs://",
    "gs://acme-ml-mlplane-artifacts/a\\..\\..\\x",
    "gs://acme-ml-mlplane-artifacts/a\x00b",
    "gs://acme-ml-mlplane-artifacts/a\nb",
    "gs://../x",
    "gs://Upper/x",
    "gs://ab/x",
    "gs://acme-ml-mlplane-artifacts/" + "x" * 1025,
    "/etc/passwd",
    "s3://b/x",
]


@pytest.mark.parametrize("uri", BAD)
def test_bad_uris_are_rejected_naming_the_uri(uri: str) -> None:
    with pytest.raises(InvalidUri) as info:
        parse_gs_uri(uri)
    assert isinstance(info.value, ConfigError)
    assert repr(uri) in str(info.value)


@pytest.mark.parametrize("uri", BAD)
def test_bad_uris_write_nothing(uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path, monkeypatch)
    store = store_for(project, "training")  # may write the artifact bucket
    src = tmp_path / "model.pt"
    src.write_bytes(b"weights")
    before = files_under(tmp_path)
    with pytest.raises(InvalidUri):
        store.write_bytes(uri, b"x")
    with pytest.raises(InvalidUri):
        store.upload(src, uri)
    with pytest.raises(ConfigError):
        store.copy(str(src), uri)
    with pytest.raises(InvalidUri):
        store.download(uri, tmp_path / "out")
    assert files_under(tmp_path) == before
    assert not (tmp_path / ".mlplane" / "buckets").exists()


def test_good_uris() -> None:
    assert parse_gs_uri(f"gs://{BUCKET}/runs/7/model.pt") == GsUri(BUCKET, "runs/7/model.pt")
    assert parse_gs_uri("gs://a.b_c-d/x y/ü") == GsUri("a.b_c-d", "x y/ü")
    assert parse_gs_uri("gs://abc/..x/y..").name == "..x/y.."  # dots inside a name are fine
    assert parse_gs_uri(f"gs://{BUCKET}", prefix=True) == GsUri(BUCKET, "")
    assert parse_gs_uri(f"gs://{BUCKET}/runs/", prefix=True).is_prefix
    with pytest.raises(InvalidUri, match="names a prefix"):
        parse_gs_uri(f"gs://{BUCKET}/runs/")
    assert str(GsUri(BUCKET, "a/b")) == f"gs://{BUCKET}/a/b"
    assert parse_gs_uri(f"gs://{BUCKET}/runs/", prefix=True).child("m.pt").name == "runs/m.pt"
