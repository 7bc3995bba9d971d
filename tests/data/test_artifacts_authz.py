"""Every artifact call is authorized for the acting principal on the bucket, as on GCS."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplane.data.artifacts import ArtifactStore, ObjectNotFound
from mlplane.errors import PermissionDenied
from tests.data.conftest_artifacts import ROOT, files_under, make_project, store_for
from tests.harness import Team
from tests.teams import ALICE, team_fixture, wipe

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

team = team_fixture()


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


def test_the_default_identity_is_the_signed_in_user(team: Team) -> None:
    """Without an explicit principal the store acts as whoever the credentials belong to: the
    signed-in user; the variables that named an identity in earlier versions are ignored."""
    wipe(team.project_file)
    with team.environment(MLPLANE_PRINCIPAL="training", MLPLANE_USER="training"):
        store = ArtifactStore.open(team.project_file, backend="local")
        assert (str(store.caller.principal), store.caller.origin) == (f"user:{ALICE}", "signin")
        with pytest.raises(PermissionDenied) as info:
            store.write_bytes(f"{ROOT}/x", b"x")
    message = str(info.value)
    assert f"user:{ALICE}" in message and "storage.objects.create" in message
    assert "CI trigger 'train'" in message and "mlplane ci trigger train" in message
    assert files_under(team.project_file.parent / ".mlplane" / "buckets") == []


@pytest.mark.parametrize(("identity", "may_write"), [("training-adhoc", False), ("training", True)])
def test_a_service_account_token_acts_as_that_account(
    team: Team, identity: str, may_write: bool
) -> None:
    """A process holding a service account's token (CLOUDSDK_AUTH_ACCESS_TOKEN_FILE, as gcloud
    takes one) acts as that account, as the token authority says."""
    wipe(team.project_file)
    with team.acting(identity):
        store = ArtifactStore.open(team.project_file, backend="local")
        assert store.caller.principal.email == f"mlplane-{identity}@acme-ml.iam.gserviceaccount.com"
        assert store.caller.origin == "impersonation"  # the admin's generateAccessToken
        if may_write:
            assert store.write_bytes(f"{ROOT}/{identity}/x", b"x").size == 1
        else:
            with pytest.raises(PermissionDenied, match=r"storage\.objects\.create"):
                store.write_bytes(f"{ROOT}/{identity}/x", b"x")
    reader = store_for(team.project_file, "training")
    if may_write:
        assert reader.read_bytes(f"{ROOT}/{identity}/x") == b"x"
    else:
        with pytest.raises(ObjectNotFound):
            reader.stat(f"{ROOT}/{identity}/x")


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
