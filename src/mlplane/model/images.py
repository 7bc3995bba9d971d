"""The process images: what each one holds, how its definition reads, and where it lives.

Every image is built on one base made from Debian's packages (bookworm, `debootstrap
--variant=minbase`, Python 3.11 from Debian): Docker Hub is not needed anywhere. Its
definition is `FROM scratch` + `ADD rootfs.tar /`, the root filesystem staged into the build
context by mlplane's own `prepare` step (the way Debian's official images are built).

    base             Debian bookworm minbase + python3, python3-venv, ca-certificates
    mlplane          mlplane and its dependencies: the image the CI steps run in
    serving          the model server (`python -m mlplane.serving`; the standard library only)
    training         the training runner and the data SDK
    experimentation  JupyterLab and the data SDK

Each Python image installs its `requirements.lock` (pins written from the installed
environment, docs/decisions/1701) from wheels staged into its context, offline, into a venv at
/opt/mlplane/venv, then mlplane's own wheel. Auxiliary services the project declares with an
image in the project's repository get an image of their own, from `images/NAME/` in the
project's source, built after the process images with the same `BASE` build argument.

Images are named `HOST/PROJECT/REPOSITORY/NAME` (Artifact Registry's Docker format; locally
HOST is the agent's registry on loopback) and tagged with the build id and `latest`; what a
deploy names is the digest (`NAME@sha256:...`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlplane.model.project import ProjectFile

BASE = "base"
MLPLANE = "mlplane"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_PYTHON = "3.11.2"  # bookworm's python3 (3.11.2-1+b1): the version pins must admit
VENV = "/opt/mlplane/venv"
ROOTFS = "rootfs.tar"
WHEELS = "wheels"
LOCK = "requirements.lock"
DOCKERFILE = "Dockerfile"
DIRECTORY = "images"  # in the project's source
DOCKER_BUILDER = "gcr.io/cloud-builders/docker"
_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class ImageDef:
    """One image mlplane defines: its top-level distributions (with extras), its command."""

    name: str
    process: str  # the operational model's process it serves ("" for base)
    requires: tuple[str, ...]  # top-level requirements, e.g. "mlplane[data]"
    command: tuple[str, ...]
    description: str
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def python(self) -> bool:
        return self.name != BASE


IMAGES: tuple[ImageDef, ...] = (
    ImageDef(BASE, "", (), ("/bin/sh",), "Debian bookworm (minbase) with Python 3.11"),
    ImageDef(
        MLPLANE,
        "cicd",
        ("mlplane",),
        ("mlplane", "--help"),
        "mlplane itself: the image CI steps run in",
    ),
    ImageDef(
        "serving",
        "serving",
        (),
        ("python", "-m", "mlplane.serving"),
        "the model server (standard library only)",
    ),
    ImageDef(
        "training",
        "training",
        ("mlplane[data]",),
        ("python", "-m", "mlplane.training.runner"),
        "the training runner and the data SDK",
    ),
    ImageDef(
        "experimentation",
        "experimentation",
        ("mlplane[data,notebook]",),
        ("python", "-m", "mlplane.notebook.launcher"),
        "JupyterLab and the data SDK",
        {
            "JUPYTER_CONFIG_DIR": "/tmp/jupyter/config",
            "JUPYTER_DATA_DIR": "/tmp/jupyter/data",
            "JUPYTER_RUNTIME_DIR": "/tmp/jupyter/runtime",
        },
    ),
)
BY_NAME: Mapping[str, ImageDef] = {i.name: i for i in IMAGES}


@dataclass(frozen=True)
class ImageRef:
    """`HOST/PATH[:TAG][@DIGEST]`, as Docker names an image."""

    host: str
    path: str  # PROJECT/REPOSITORY/NAME for Artifact Registry
    tag: str = ""
    digest: str = ""

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        rest, _, digest = text.partition("@")
        if digest and not _DIGEST.fullmatch(digest):
            raise ValueError(f"'{text}': a digest is sha256:<64 hex digits>")
        host, sep, path = rest.partition("/")
        if not sep or not ("." in host or ":" in host or host == "localhost"):
            raise ValueError(f"'{text}' names no registry host (HOST/PROJECT/REPOSITORY/IMAGE)")
        tag = ""
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            path, _, tag = path.rpartition(":")
        if not all(_NAME.fullmatch(p) for p in path.split("/")):
            raise ValueError(f"'{text}': image path '{path}' is not a Docker repository name")
        return cls(host, path, tag, digest)

    @property
    def repository(self) -> str:
        """HOST/PATH without tag or digest."""
        return f"{self.host}/{self.path}"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def with_digest(self, digest: str) -> ImageRef:
        return ImageRef(self.host, self.path, "", digest)

    def with_tag(self, tag: str) -> ImageRef:
        return ImageRef(self.host, self.path, tag, "")

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def artifact_registry_host(region: str) -> str:
    return f"{region}-docker.pkg.dev"


def repository_path(host: str, project: str, repository: str) -> str:
    """HOST/PROJECT/REPOSITORY: where the project's images are pushed."""
    return f"{host}/{project}/{repository}"


def in_repository(image: str, project: str, repository: str) -> str | None:
    """The image's name when `image` lives in the project's repository (any host), else None."""
    try:
        ref = ImageRef.parse(image)
    except ValueError:
        return None
    parts = ref.path.split("/")
    if len(parts) == 3 and parts[0] == project and parts[1] == repository:
        return parts[2]
    return None


def localize(image: str, ar_host: str, local_host: str) -> str:
    """`image` with Artifact Registry's host replaced by the local registry's (the emulator's
    DNS: locally `REGION-docker.pkg.dev` is the agent's registry on loopback)."""
    if image.startswith(ar_host + "/"):
        return local_host + image[len(ar_host) :]
    return image


def build_order(auxiliary: Iterable[str]) -> tuple[str, ...]:
    """Images a build makes, in order: the base, the process images, then auxiliary images."""
    extra = sorted({a for a in auxiliary if a not in BY_NAME})
    for name in extra:
        if not _NAME.fullmatch(name):
            raise ValueError(f"image name '{name}' is not a Docker repository name")
    return (*(i.name for i in IMAGES), *extra)


# -- the definitions ----------------------------------------------------------------------------


def dockerfile(image: ImageDef) -> str:
    """The Dockerfile of one of mlplane's images (written by `mlplane images write`)."""
    if image.name == BASE:
        return (
            "# The base of every image: Debian bookworm (debootstrap --variant=minbase) with\n"
            f"# {', '.join(BASE_PACKAGES)}. mlplane's prepare step stages {ROOTFS}\n"
            "# (cached per recipe; its package list is beside it as packages.txt).\n"
            "FROM scratch\n"
            f"ADD {ROOTFS} /\n"
            'CMD ["/bin/sh"]\n'
        )
    env = {
        "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        **image.env,
    }
    env_line = " \\\n    ".join(f'{k}="{v}"' for k, v in env.items())
    cmd = ", ".join(f'"{a}"' for a in image.command)
    pip = (
        f"{VENV}/bin/pip install --no-index --no-deps --no-cache-dir --disable-pip-version-check "
        f"--no-compile -q --find-links /tmp/context/{WHEELS}"
    )
    # Few instructions: with the vfs storage driver every layer is a full copy of the tree.
    return (
        f"# {image.description[0].upper()}{image.description[1:]}. Written by "
        f"`mlplane images write`; pins in {LOCK}.\n"
        "ARG BASE\n"
        "FROM ${BASE} AS install\n"
        "COPY . /tmp/context/\n"
        f"RUN python3 -m venv {VENV} \\\n"
        f" && {pip} -r /tmp/context/{LOCK} \\\n"
        f" && {pip} mlplane \\\n"
        f" && cp /tmp/context/{LOCK} /opt/mlplane/{LOCK}\n"
        "FROM ${BASE}\n"
        "COPY --from=install /opt/mlplane /opt/mlplane\n"
        f"ENV {env_line}\n"
        f"CMD [{cmd}]\n"
    )


def repository_id(project: ProjectFile) -> str:
    """The Artifact Registry repository of the project's images (`[resources.repositories]
    images`)."""
    return project.resources.repositories.get("images", "mlplane")


def project_images(project: ProjectFile) -> tuple[str, ...]:
    """Every image `build-images` makes for this project: mlplane's, then one per auxiliary
    image declared in the project's repository (`images/NAME/` in its source)."""
    repo, pid = repository_id(project), project.project.id
    aux = project.auxiliary
    declared = [i.image for i in aux.instances] + [r.image for r in aux.run_services]
    names = (in_repository(project.resolve(image), pid, repo) for image in declared)
    return build_order(n for n in names if n)
