"""Every artifact call is authorized for the acting principal on the bucket, as on GCS."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplane.data.artifacts import ArtifactStore, ObjectNotFound
from mlplane.errors import PermissionDenied
from tests.data.conftest_artifacts import ROOT, files_under, make_project, store_for

OBJ = f"{ROOT}/runs/1/model.pt"
# principal -> (may read and list, may create)
MATRIX = {
    "alice@acme.com": (True, False),  # a team user
    "bob@acme.com": (True, False),  # a team user through the ml@ group
    "training": (True, True),  # the CI trigger 'train' runs as it: the only artifact writer
    "training-adhoc": (True, False),  # users' remote training VMs: cannot persist artifacts
    "serving-runtime": (True, False),  # replicas load model artifacts
    "cicd": (False, False),
    "mallory@evil.example": (False, False),
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = make_project(tmp_path, monkeypatch)
    store_for(path, "training").write_bytes(OBJ, b"weights")
    return path


@pytest.mark.parametrize("who", sorted(MATRIX))
def test_read_write_matrix(project: Path, who: str) -> None:
    may_read, may_write = MATRIX[who]
    store = store_for(project, who)
    reads = [
        lambda: store.read_bytes(OBJ),
        lambda: store.stat(OBJ),
        lambda: store.list(f"{ROOT}/runs/"),
    ]
    for read in reads:
        if may_read:
            read()
        else:
            with pytest.raises(PermissionDenied, match=r"storage\.objects\.(get|list)"):
                read()
    new = f"{ROOT}/runs/{who}/new.bin"
    if may_write:
        assert store.write_bytes(new, b"x").size == 1
    else:
        with pytest.raises(PermissionDenied, match=r"storage\.objects\.create"):
            store.write_bytes(new, b"x")
        with pytest.raises(ObjectNotFound):
            store_for(project, "training").stat(new)


def test_user_write_is_denied_with_the_sanctioned_path(project: Path, tmp_path: Path) -> None:
    src = tmp_path / "model.pt"
    src.write_bytes(b"local weights")
    before = files_under(project.parent / ".mlplane")
    with pytest.raises(PermissionDenied) as info:
        store_for(project, "alice@acme.com").upload(src, f"{ROOT}/runs/2/model.pt")
    message = str(info.value)
    assert "user:alice@acme.com" in message
    assert "storage.objects.create" in message
    assert "CI trigger 'train'" in message
    assert "mlplane ci trigger train" in message
    assert files_under(project.parent / ".mlplane") == before


def test_training_creates_but_may_not_overwrite(project: Path) -> None:
    """Replacing an object needs storage.objects.delete on GCS; `training` holds only create,
    so artifacts it persisted are immutable."""
    training = store_for(project, "training")
    with pytest.raises(PermissionDenied, match=r"exists, and replacing .*storage\.objects\.delete"):
        training.write_bytes(OBJ, b"overwrite")
    gen = training.stat(OBJ).generation
    with pytest.raises(PermissionDenied, match=r"storage\.objects\.delete"):
        training.write_bytes(OBJ, b"overwrite", if_generation_match=gen)
    with pytest.raises(PermissionDenied, match=r"storage\.objects\.delete"):
        training.delete(OBJ)
    assert training.read_bytes(OBJ) == b"weights"


def test_denial_happens_before_the_backend_is_touched(project: Path) -> None:
    class Untouchable:
        name = "untouchable"

        def __getattr__(self, attr: str) -> object:
            raise AssertionError(f"backend.{attr} called before authorization")

    store = store_for(project, "mallory@evil.example")
    guarded = ArtifactStore(store.caller, Untouchable())  # type: ignore[arg-type]
    for call in (
        lambda: guarded.read_bytes(OBJ),
        lambda: guarded.list(ROOT),
        lambda: guarded.write_bytes(OBJ, b"x"),
        lambda: guarded.delete(OBJ),
    ):
        with pytest.raises(PermissionDenied):
            call()


def test_acting_principal_from_the_environment(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLANE_PRINCIPAL", "training-adhoc")
    store = ArtifactStore.open(project, backend="local")
    assert store.caller.principal.email.startswith("mlplane-training-adhoc@")
    with pytest.raises(PermissionDenied):
        store.write_bytes(f"{ROOT}/x", b"x")


def test_copies_between_buckets_and_to_local_directories(project: Path, tmp_path: Path) -> None:
    training = store_for(project, "training")
    meta, where = training.copy(OBJ, f"{ROOT}/promoted/")
    assert where == f"{ROOT}/promoted/model.pt" and meta.size == len(b"weights")
    outdir = tmp_path / "out"
    outdir.mkdir()
    meta2, path = store_for(project, "alice@acme.com").copy(where, str(outdir))
    assert path == str(outdir / "model.pt") and Path(path).read_bytes() == b"weights"
    assert meta2.md5_hash == meta.md5_hash
    with pytest.raises(PermissionDenied):  # reading is not enough to copy into the bucket
        store_for(project, "alice@acme.com").copy(OBJ, f"{ROOT}/mine/")
