"""`mlplane images write`: the image definitions in the project's source, under `images/`.

    images/base/Dockerfile                 FROM scratch + the staged Debian root filesystem
    images/NAME/Dockerfile                 mlplane, serving, training, experimentation
    images/NAME/requirements.lock          pins from the installed environment (lock.py)
    images/.gitignore                      what the prepare step stages (rootfs.tar, wheels/)

Definitions are the project's to commit and review; a rewrite changes only files whose content
differs, and a Dockerfile the team edited (no longer mlplane's) is kept unless `force`.
Auxiliary images (`images/NAME/` for an auxiliary service) are the team's own: never written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlplane.model.images import (
    BASE,
    DIRECTORY,
    DOCKERFILE,
    IMAGES,
    LOCK,
    ROOTFS,
    WHEELS,
    dockerfile,
)

from .lock import Lock, Resolve, lock_for, pip_resolve

GITIGNORE = (
    "# staged by mlplane's prepare step (mlplane ci step build-images --prepare)\n"
    f"*/{ROOTFS}\n*/{WHEELS}/\n*/packages.txt\n"
)
_MARK = "Written by `mlplane images write`"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Written:
    path: Path
    status: str  # "written", "unchanged", "kept" (edited by the team)


def _put(path: Path, text: str, force: bool, ours: bool) -> Written:
    try:
        old = path.read_text()
    except OSError:
        old = None
    if old == text:
        return Written(path, "unchanged")
    if old is not None and ours and _MARK not in old and "FROM scratch" not in old and not force:
        return Written(path, "kept")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return Written(path, "written")


def write_definitions(
    project_dir: Path,
    *,
    force: bool = False,
    resolve: Resolve = pip_resolve,
    progress: Progress = lambda _: None,
) -> list[Written]:
    root = project_dir / DIRECTORY
    out = [_put(root / ".gitignore", GITIGNORE, force, ours=False)]
    for image in IMAGES:
        out.append(_put(root / image.name / DOCKERFILE, dockerfile(image), force, ours=True))
        if image.name == BASE:
            continue
        lock = lock_for(image, resolve)
        progress(f"{image.name}: {len(lock.pins)} pins")
        out.append(_put(root / image.name / LOCK, lock.render(), force, ours=False))
    return out


def read_lock(context: Path) -> Lock:
    path = context / LOCK
    try:
        text = path.read_text()
    except OSError:
        return Lock(context.name, (), ())
    return Lock.parse(context.name, text, str(path))
