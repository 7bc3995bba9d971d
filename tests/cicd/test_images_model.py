"""The image definitions, their locks and mlplane's wheel, and build-images's config: what the
trigger builds follows from the model and the project file, the same for the local agent and
for the exported Cloud Build trigger."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import zipfile
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from mlplane.errors import ConfigError
from mlplane.iam.export.foundation import build_foundation
from mlplane.iam.loading import load_project
from mlplane.iam.synthesis import synthesize
from mlplane.images.definitions import write_definitions
from mlplane.images.lock import Lock, Pin, closure, lock_for
from mlplane.images.stage import _wheel_key
from mlplane.images.wheel import build_wheel
from mlplane.model.builds import build_config
from mlplane.model.images import (
    BASE,
    BY_NAME,
    DOCKER_BUILDER,
    ImageRef,
    build_order,
    dockerfile,
    in_repository,
    localize,
    project_images,
)
from tests.conftest import PROJECT_TOML

AUX = """
[[auxiliary.run_services]]
name = "hello"
image = "{region}-docker.pkg.dev/{project}/mlplane/hello"

[[auxiliary.instances]]
name = "aux-hello"
image = "{region}-docker.pkg.dev/{project}/mlplane/hello"

[[auxiliary.instances]]
name = "aux-elsewhere"
image = "ghcr.io/acme/other:1"
"""


def test_image_refs_parse_and_print() -> None:
    ref = ImageRef.parse("127.0.0.1:5000/acme-ml/mlplane/hello:20260101-abc")
    assert (ref.host, ref.path, ref.tag, ref.name) == (
        "127.0.0.1:5000",
        "acme-ml/mlplane/hello",
        "20260101-abc",
        "hello",
    )
    digest = "sha256:" + "a" * 64
    assert str(ref.with_digest(digest)) == f"127.0.0.1:5000/acme-ml/mlplane/hello@{digest}"
    for bad in ("hello", "acme/hello:1", f"r.io/a/b@sha256:{'x' * 64}", "r.io/A/b"):
        with pytest.raises(ValueError):
            ImageRef.parse(bad)


def test_repository_membership_and_the_local_registry_host() -> None:
    image = "us-central1-docker.pkg.dev/acme-ml/mlplane/hello"
    assert in_repository(image, "acme-ml", "mlplane") == "hello"
    assert in_repository(image, "other", "mlplane") is None
    assert in_repository("ghcr.io/acme/other:1", "acme-ml", "mlplane") is None
    local = localize(image, "us-central1-docker.pkg.dev", "127.0.0.1:5000")
    assert local == "127.0.0.1:5000/acme-ml/mlplane/hello"
    assert localize("ghcr.io/x/y", "us-central1-docker.pkg.dev", "127.0.0.1:5000") == "ghcr.io/x/y"


def test_the_build_order_is_base_then_mlplanes_then_auxiliary(tmp_path: Path) -> None:
    assert build_order(["zeta", "hello", "serving"]) == (
        "base",
        "mlplane",
        "serving",
        "training",
        "experimentation",
        "hello",
        "zeta",
    )
    path = tmp_path / "mlplane.toml"
    path.write_text(PROJECT_TOML + AUX)
    assert project_images(load_project(path).project)[-1] == "hello"  # ghcr.io's is not ours


def test_dockerfiles_install_the_lock_offline_in_few_layers() -> None:
    base = dockerfile(BY_NAME[BASE])
    assert "FROM scratch" in base and "ADD rootfs.tar /" in base
    serving = dockerfile(BY_NAME["serving"])
    assert serving.count("FROM ${BASE}") == 2 and "ARG BASE" in serving
    assert "--no-index" in serving and "-r /tmp/context/requirements.lock" in serving
    assert serving.rstrip().endswith('CMD ["python", "-m", "mlplane.serving"]')
    layers = [ln.split()[0] for ln in serving.splitlines() if ln[:1].isupper()]
    assert layers.count("ENV") == 1 and "WORKDIR" not in layers and "LABEL" not in layers


def test_build_images_config_prepares_builds_pushes_then_deploys() -> None:
    repo = "127.0.0.1:5000/acme-ml/mlplane"
    images = build_order(["hello"])
    config = build_config(
        "build-images", "acme-ml", "us-central1", "cicd@x", repository=repo, images=images
    )
    ids = [s["id"] for s in config["steps"]]
    assert ids[0] == "prepare" and ids[-1] == "build-images"
    assert ids[1:-1] == [f"{verb}-{n}" for n in images for verb in ("build", "push")]
    docker = [s for s in config["steps"] if s["name"] == DOCKER_BUILDER]
    assert len(docker) == 2 * len(images) and all("entrypoint" not in s for s in docker)
    build_hello = next(s for s in docker if s["id"] == "build-hello")["args"]
    assert f"{repo}/hello:$BUILD_ID" in build_hello and f"BASE={repo}/base:$BUILD_ID" in build_hello
    assert build_hello[-1] == "images/hello"
    assert config["images"] == [f"{repo}/{n}:$BUILD_ID" for n in images]
    assert config["steps"][-1]["args"][-4:] == ["--repository", repo, "--tag", "$BUILD_ID"]
    # the other triggers are mlplane's step alone, as before
    assert [s["id"] for s in build_config("train", "acme-ml", "us-central1", "t")["steps"]] == [
        "train"
    ]


def test_the_exported_trigger_builds_the_same_images_in_artifact_registry(tmp_path: Path) -> None:
    path = tmp_path / "mlplane.toml"
    path.write_text(PROJECT_TOML + AUX.replace("aux-elsewhere", "aux-two"))
    loaded = load_project(path)
    foundation = build_foundation(loaded, synthesize(loaded))
    trigger = next(t for t in foundation.triggers if t.name == "build-images")
    build: dict[str, Any] = trigger.body["build"]
    repo = "us-central1-docker.pkg.dev/acme-ml/mlplane"
    assert build["images"] == [f"{repo}/{n}:$BUILD_ID" for n in build_order(["hello"])]
    assert "serviceAccount" not in build  # the trigger's own account runs it
    assert trigger.body["github"]["push"]["branch"] == "^main$"


def _dist(name: str, version: str, requires: list[str], python: str = "") -> Any:
    meta = Message()
    meta["Name"] = name
    if python:
        meta["Requires-Python"] = python

    class Dist(md.Distribution):
        def read_text(self, filename: str) -> str | None:
            return None

        def locate_file(self, path: Any) -> Any:
            return Path(path)

        @property
        def metadata(self) -> Any:  # type: ignore[override]
            return meta

        @property
        def version(self) -> str:
            return version

        @property
        def requires(self) -> list[str]:  # type: ignore[override]
            return requires

    return Dist()


def test_the_lock_walks_requirements_with_extras_and_markers_and_fixes_python() -> None:
    dists = {
        "mlplane": _dist(
            "mlplane",
            "0.1.0",
            ["pydantic>=2", 'duckdb>=2; extra == "data"', 'neo4j>=6; extra == "gcp"'],
        ),
        "pydantic": _dist(
            "pydantic", "2.14.4", ["typing-extensions", 'tzdata; sys_platform == "win32"']
        ),
        "typing-extensions": _dist("typing_extensions", "4.16.0", []),
        "duckdb": _dist("duckdb", "2.0.1", [], python=">=3.11.5"),
        "neo4j": _dist("neo4j", "6.0", []),
    }
    assert closure(["mlplane"], dists) == {"pydantic": "2.14.4", "typing-extensions": "4.16.0"}
    asked: list[tuple[str, str]] = []

    def resolve(name: str, installed: str) -> str:
        asked.append((name, installed))
        return "1.9.0"

    lock = lock_for(BY_NAME["training"], resolve, dists)
    assert asked == [("duckdb", "2.0.1")]
    assert [p.line() for p in lock.pins] == [
        "duckdb==1.9.0  # installed 2.0.1 requires Python >=3.11.5",
        "pydantic==2.14.4",
        "typing-extensions==4.16.0",
    ]
    parsed = Lock.parse("training", lock.render(), "requirements.lock")
    assert parsed.pins == lock.pins and parsed.requires == ("mlplane[data]",)
    with pytest.raises(ConfigError, match=r"line 4.*not NAME==VERSION"):
        Lock.parse("x", "# a\n# b\nfoo==1\nbar>=2\n", "requirements.lock")
    with pytest.raises(ConfigError, match="ghost: is required by an image but not installed"):
        closure(["ghost"], dists)


def test_definitions_are_rewritten_only_where_they_changed_and_edits_are_kept(
    tmp_path: Path,
) -> None:
    pins = {"mlplane": [Pin("click", "8.5.1")]}

    def fake_lock(image: Any, resolve: Any = None, dists: Any = None) -> Lock:
        return Lock(image.name, image.requires, tuple(pins.get(image.name, [])))

    import mlplane.images.definitions as D

    original = D.lock_for
    D.lock_for = fake_lock  # type: ignore[assignment]
    try:
        first = write_definitions(tmp_path)
        assert {w.status for w in first} == {"written"}
        assert (
            (tmp_path / "images" / "mlplane" / "requirements.lock")
            .read_text()
            .endswith("click==8.5.1\n")
        )
        assert {w.status for w in write_definitions(tmp_path)} == {"unchanged"}
        edited = tmp_path / "images" / "serving" / "Dockerfile"
        edited.write_text("FROM ${BASE}\nRUN echo ours\n")
        again = {w.path.name + w.path.parent.name: w.status for w in write_definitions(tmp_path)}
        assert again["Dockerfileserving"] == "kept" and edited.read_text().endswith("ours\n")
        forced = write_definitions(tmp_path, force=True)
        assert any(w.path == edited and w.status == "written" for w in forced)
    finally:
        D.lock_for = original  # type: ignore[assignment]


def test_mlplanes_wheel_is_installable_and_reproducible(tmp_path: Path) -> None:
    one = build_wheel(tmp_path / "a")
    two = build_wheel(tmp_path / "b")
    assert one.read_bytes() == two.read_bytes()
    assert _wheel_key(one.name) == ("mlplane", one.name.split("-")[1])
    with zipfile.ZipFile(one) as zf:
        names = zf.namelist()
        assert "mlplane/serving/__main__.py" in names and not any(".pyc" in n for n in names)
        info = next(n.rsplit("/", 1)[0] for n in names if n.endswith("/WHEEL"))
        record = zf.read(f"{info}/RECORD").decode().splitlines()
        entry = next(r for r in record if r.startswith("mlplane/__init__.py,"))
        data = zf.read("mlplane/__init__.py")
        import base64

        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert entry == f"mlplane/__init__.py,sha256={digest},{len(data)}"
        assert b"mlplane = mlplane.cli.main:entrypoint" in zf.read(f"{info}/entry_points.txt")
