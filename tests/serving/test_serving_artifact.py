"""Artifacts: round trip, checksums as GCS reports them, corruption and malformed manifests."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from serving_support import SlowEcho, linear_manifest

from mlplane.errors import MlplaneError
from mlplane.serving.artifact import (
    CHECKSUMS,
    MANIFEST,
    ArtifactError,
    load_artifact,
    write_artifact,
)
from mlplane.serving.checksums import FileChecksums, crc32c
from mlplane.serving.linear import LinearModel
from mlplane.serving.predictor import is_inline, load_predictor


def crc32c_bitwise(data: bytes) -> int:
    """Reference CRC-32C, bit by bit (no table): an independent check of the table version."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def test_crc32c_matches_the_standard_check_value_and_a_bitwise_reference() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 / iSCSI check value
    data = bytes(range(256)) * 3 + b"mlplane"
    assert crc32c(data) == crc32c_bitwise(data)
    assert crc32c(data[100:], crc32c(data[:100])) == crc32c(data)


def test_checksums_use_the_gcs_encodings() -> None:
    sums = FileChecksums.of(b"hello")
    assert sums.size == 5
    assert sums.sha256 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert sums.md5_hash == "XUFAKrxLKna5cZ2REBfFkg=="  # base64 of md5 5d41402a...
    assert base64.b64decode(sums.crc32c) == crc32c_bitwise(b"hello").to_bytes(4, "big")
    assert FileChecksums.from_json(sums.to_json()) == sums


def test_directory_round_trip_verifies_every_file(tmp_path: Path) -> None:
    manifest = linear_manifest(created="2026-01-01T00:00:00+00:00", metrics={"auc": 0.9})
    out = write_artifact(tmp_path / "m", manifest, {"vocab/words.txt": b"good\nbad\n"})
    sidecar = json.loads((out / CHECKSUMS).read_text())
    assert sorted(sidecar["files"]) == [MANIFEST, "vocab/words.txt"]
    assert sidecar["files"][MANIFEST] == FileChecksums.of((out / MANIFEST).read_bytes()).to_json()
    art = load_artifact(out)
    assert (art.name, art.version, art.format) == ("toy", "3", "mlplane.linear/v1")
    assert art.manifest == manifest
    assert art.read_bytes("vocab/words.txt") == b"good\nbad\n"
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


def test_single_file_round_trip(tmp_path: Path) -> None:
    out = write_artifact(tmp_path / "toy.json", linear_manifest())
    assert (tmp_path / "toy.json.checksums.json").is_file()
    art = load_artifact(out)
    assert art.manifest_name == "toy.json" and art.name == "toy"
    assert isinstance(load_predictor(art), LinearModel)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda b: b.replace(b'"toy"', b'"tox"'), "sha256 mismatch"),  # same size
        (lambda b: b[:-5], "size mismatch"),
        (lambda b: b + b" ", "size mismatch"),
    ],
)
def test_corrupt_manifest_is_refused_naming_the_file(
    tmp_path: Path, damage: Any, expected: str
) -> None:
    out = write_artifact(tmp_path / "m", linear_manifest())
    (out / MANIFEST).write_bytes(damage((out / MANIFEST).read_bytes()))
    with pytest.raises(ArtifactError) as err:
        load_artifact(out)
    assert str(out / MANIFEST) in str(err.value) and expected in str(err.value)


def test_corrupt_extra_file_is_refused_at_load_and_on_read(tmp_path: Path) -> None:
    out = write_artifact(tmp_path / "m", linear_manifest(), {"w.bin": b"\x00" * 64})
    art = load_artifact(out)
    (out / "w.bin").write_bytes(b"\x00" * 63 + b"\x01")
    with pytest.raises(ArtifactError, match=r"w\.bin: corrupt: sha256 mismatch"):
        load_artifact(out)
    with pytest.raises(ArtifactError, match=r"w\.bin: corrupt"):
        art.read_bytes("w.bin")
    with pytest.raises(ArtifactError, match="not listed"):
        art.read_bytes("other.bin")
    (out / "w.bin").unlink()
    with pytest.raises(ArtifactError, match=r"w\.bin: missing"):
        load_artifact(out)


def test_missing_artifact_and_missing_sidecar_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError) as err:
        load_artifact(tmp_path / "nowhere")
    assert f"model artifact {tmp_path / 'nowhere'}: does not exist" in str(err.value)
    out = write_artifact(tmp_path / "m", linear_manifest())
    (out / CHECKSUMS).unlink()
    with pytest.raises(ArtifactError, match=r"checksums\.json: missing"):
        load_artifact(out)
    assert isinstance(err.value, MlplaneError) and err.value.exit_code != 0


@pytest.mark.parametrize(
    ("sidecar", "expected"),
    [
        ({"files": {}}, "field 'files'"),
        ({"files": {"other.json": {}}}, "field 'files.other.json'"),
        ({"files": {"../model.json": {}}}, "must be a relative path"),
        ("not json at all", "unreadable checksums file"),
    ],
)
def test_malformed_sidecar_is_refused(tmp_path: Path, sidecar: Any, expected: str) -> None:
    out = write_artifact(tmp_path / "m", linear_manifest())
    text = sidecar if isinstance(sidecar, str) else json.dumps(sidecar)
    (out / CHECKSUMS).write_text(text)
    with pytest.raises(ArtifactError, match=expected):
        load_artifact(out)


def test_sidecar_must_list_the_manifest(tmp_path: Path) -> None:
    out = write_artifact(tmp_path / "m", linear_manifest(), {"x.txt": b"x"})
    doc = json.loads((out / CHECKSUMS).read_text())
    del doc["files"][MANIFEST]
    (out / CHECKSUMS).write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match=r"does not list the manifest 'model\.json'"):
        load_artifact(out)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "'name'"),
        ({"version": None}, "'version'"),
        ({"predictor": "no_colon"}, "'predictor'"),
        ({"created": 12}, "'created'"),
    ],
)
def test_manifest_common_fields_are_checked_on_write(
    tmp_path: Path, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ArtifactError, match=re.escape(f"field {field}")):
        write_artifact(tmp_path / "m", linear_manifest(**overrides))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"features": []}, "'features'"),
        ({"features": ["a", "a"]}, "'features'"),
        ({"weights": [1.0]}, "'weights'"),
        ({"weights": [1.0, "2"]}, "'weights[1]'"),
        ({"bias": True}, "'bias'"),
        ({"link": "relu"}, "'link'"),
        ({"labels": ["no", "yes"]}, "'labels'"),  # labels need the logistic link
        ({"link": "logistic", "threshold": 1.5}, "'threshold'"),
    ],
)
def test_linear_fields_are_checked_when_the_predictor_loads(
    make_artifact: Any, overrides: dict[str, Any], field: str
) -> None:
    path = make_artifact(**overrides)
    with pytest.raises(ArtifactError) as err:
        load_predictor(load_artifact(path))
    assert f"{path / MANIFEST}: field {field}" in str(err.value)


def test_custom_predictor_is_loaded_from_the_manifest(make_artifact: Any) -> None:
    predictor = load_predictor(load_artifact(make_artifact(predictor="serving_support:SlowEcho")))
    assert isinstance(predictor, SlowEcho) and not is_inline(predictor)
    assert is_inline(load_predictor(load_artifact(make_artifact())))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"format": "acme.tree/v2"}, "format 'acme.tree/v2' has no built-in predictor"),
        ({"predictor": "no_such_module_xyz:Model"}, "cannot import no_such_module_xyz"),
        ({"predictor": "serving_support:NoSuchClass"}, "no class with a from_artifact"),
        (
            {"predictor": "serving_support:Failing", "fail_on_load": True},
            "failed to load: RuntimeError: weights shape",
        ),
    ],
)
def test_predictor_errors_name_the_manifest_and_the_cause(
    make_artifact: Any, overrides: dict[str, Any], expected: str
) -> None:
    path = make_artifact(**overrides)
    with pytest.raises(ArtifactError) as err:
        load_predictor(load_artifact(path))
    assert str(path / MANIFEST) in str(err.value) and expected in str(err.value)
