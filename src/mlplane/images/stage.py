"""The prepare step: stage what the image definitions' build contexts need, offline.

For `images/base/` the cached Debian root filesystem (rootfs.py); for every Python image the
wheels its `requirements.lock` pins and mlplane's own wheel, in `images/NAME/wheels/`. Wheels
come from a cache (`CACHE/wheels`); what is missing is fetched once with this machine's pip
(`pip download --no-deps --only-binary=:all: --python-version 3.11.2`: pip's own index
settings and certificates apply) and kept. Staged files are hard links into the cache, so a
build with no change stages in milliseconds and the layers that COPY them stay cache hits.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlplane.errors import MlplaneError
from mlplane.model.images import BASE, BY_NAME, DIRECTORY, DOCKERFILE, ROOTFS, WHEELS

from .definitions import read_lock
from .lock import Pin, canonical, pip_download
from .rootfs import Recipe, apt_mirror, base_rootfs, cache_dir, link_or_copy
from .wheel import build_wheel

Progress = Callable[[str], None]


class StageError(MlplaneError):
    """A build context cannot be prepared (a definition or a wheel is missing)."""


@dataclass(frozen=True)
class Staged:
    image: str
    context: Path
    files: int  # files staged into the context


def _wheel_key(filename: str) -> tuple[str, str]:
    parts = filename[: -len(".whl")].split("-")
    return canonical(parts[0]), parts[1] if len(parts) > 1 else ""


def wheel_cache() -> Path:
    return cache_dir() / "wheels"


def _cached(pins: tuple[Pin, ...], cache: Path) -> dict[tuple[str, str], Path]:
    wanted = {(p.name, p.version) for p in pins}
    found: dict[tuple[str, str], Path] = {}
    for path in cache.glob("*.whl") if cache.is_dir() else ():
        key = _wheel_key(path.name)
        if key in wanted:
            found[key] = path
    return found


def fetch_wheels(pins: tuple[Pin, ...], cache: Path, progress: Progress) -> dict[str, Path]:
    """name -> wheel file for every pin, fetching what the cache lacks."""
    found = _cached(pins, cache)
    missing = [p for p in pins if (p.name, p.version) not in found]
    if missing:
        cache.mkdir(parents=True, exist_ok=True)
        progress(f"wheels: fetching {len(missing)} with pip (cached in {cache})")
        cmd = pip_download(str(cache), [f"{p.name}=={p.version}" for p in missing])
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if out.returncode != 0:
            raise StageError(f"pip could not fetch the pinned wheels: {out.stderr.strip()[-600:]}")
        found = _cached(pins, cache)
        still = [f"{p.name}=={p.version}" for p in pins if (p.name, p.version) not in found]
        if still:
            raise StageError(f"no wheel for {', '.join(still)} (pip fetched none)")
    return {name: path for (name, _), path in found.items()}


def stage(workspace: Path, images: tuple[str, ...], progress: Progress = print) -> list[Staged]:
    """Stage the build contexts of `images` under `workspace/images/`."""
    root = workspace / DIRECTORY
    out: list[Staged] = []
    mlplane_wheel: Path | None = None
    for name in images:
        context = root / name
        if not (context / DOCKERFILE).is_file():
            raise StageError(
                f"{context / DOCKERFILE} is missing: "
                + (
                    "`mlplane images write` writes mlplane's image definitions and commit them"
                    if name in BY_NAME
                    else f"the auxiliary image '{name}' is the project's own (write its Dockerfile)"
                )
            )
        if name == BASE:
            base = base_rootfs(Recipe(mirror=apt_mirror()), progress)
            link_or_copy(base.tar, context / ROOTFS)
            shutil.copyfile(base.packages, context / "packages.txt")
            out.append(Staged(name, context, 2))
            continue
        if name not in BY_NAME:  # the team's own context, as committed
            out.append(Staged(name, context, 0))
            continue
        lock = read_lock(context)
        wheels = context / WHEELS
        if wheels.exists():
            shutil.rmtree(wheels)
        wheels.mkdir(parents=True)
        for _, path in sorted(fetch_wheels(lock.pins, wheel_cache(), progress).items()):
            link_or_copy(path, wheels / path.name)
        if mlplane_wheel is None:
            mlplane_wheel = build_wheel(root / ".mlplane-wheel")
        link_or_copy(mlplane_wheel, wheels / mlplane_wheel.name)
        out.append(Staged(name, context, len(lock.pins) + 1))
    if mlplane_wheel is not None:
        shutil.rmtree(mlplane_wheel.parent, ignore_errors=True)
    return out
