"""The base image's root filesystem, made from Debian's packages and cached (decision 1700).

    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm DIR MIRROR

then apt's caches and lists, documentation, manual pages and locales are removed and the tree
is written as a reproducible tar (numeric owners, sorted names, mtime 0). The cache holds one
`rootfs.tar` per recipe (suite, variant, packages, mirror: its key), with `packages.txt`
(`dpkg-query` of the tree: the base's pins) beside it. The cache directory is
`$MLPLANE_IMAGE_CACHE` or `~/.cache/mlplane/images`; an flock serialises builders.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mlplane.errors import MlplaneError
from mlplane.model.images import BASE_PACKAGES, SUITE

DEFAULT_MIRROR = "http://deb.debian.org/debian"
TRIM = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
    "usr/share/info",
    "var/cache/debconf/templates.dat-old",
    "var/log",
)
Progress = Callable[[str], None]


class BaseUnavailable(MlplaneError):
    """The base root filesystem cannot be made here (no debootstrap, not root, no mirror)."""


def cache_dir() -> Path:
    override = os.environ.get("MLPLANE_IMAGE_CACHE")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mlplane" / "images"


def apt_mirror(
    sources: tuple[Path, ...] = (
        Path("/etc/apt/sources.list.d/debian.sources"),
        Path("/etc/apt/sources.list"),
    ),
) -> str:
    """The Debian mirror this machine's apt uses (deb822 `URIs:` or a `deb URL SUITE main` line),
    `$MLPLANE_DEBIAN_MIRROR` first, deb.debian.org last."""
    if os.environ.get("MLPLANE_DEBIAN_MIRROR"):
        return os.environ["MLPLANE_DEBIAN_MIRROR"]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
            if "security" not in m.group(1):
                return m.group(1).rstrip("/")
        for m in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)\s", text, re.M):
            if "security" not in m.group(1) and not m.group(2).endswith(("-security",)):
                return m.group(1).rstrip("/")
    return DEFAULT_MIRROR


@dataclass(frozen=True)
class Recipe:
    suite: str = SUITE
    packages: tuple[str, ...] = BASE_PACKAGES
    mirror: str = DEFAULT_MIRROR

    @property
    def key(self) -> str:
        text = f"{self.suite}|minbase|{','.join(sorted(self.packages))}|{self.mirror}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Rootfs:
    tar: Path
    packages: Path
    recipe: Recipe
    built: bool  # made now (False: from the cache)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def base_rootfs(recipe: Recipe | None = None, progress: Progress = lambda _: None) -> Rootfs:
    """The cached root filesystem of `recipe`, made first if absent."""
    recipe = recipe or Recipe(mirror=apt_mirror())
    where = cache_dir() / "base" / f"{recipe.suite}-{recipe.key}"
    tar, packages = where / "rootfs.tar", where / "packages.txt"
    with _locked(where.parent / f".{where.name}.lock"):
        if tar.is_file() and packages.is_file():
            return Rootfs(tar, packages, recipe, built=False)
        _debootstrap(recipe, where, progress)
    return Rootfs(tar, packages, recipe, built=True)


def _debootstrap(recipe: Recipe, where: Path, progress: Progress) -> None:
    tool = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if os.path.exists("/usr/sbin/debootstrap") else None
    )
    if tool is None:
        raise BaseUnavailable(
            "the base image is made with debootstrap, which is not installed "
            "(apt-get install debootstrap)"
        )
    if os.geteuid() != 0:
        raise BaseUnavailable(
            "debootstrap needs root to make the base image once: run `sudo mlplane images base` "
            f"(it is cached in {cache_dir()})"
        )
    where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=where.parent, prefix=".debootstrap-") as tmp:
        tree = Path(tmp) / "root"
        progress(
            f"base: debootstrap --variant=minbase {recipe.suite} from {recipe.mirror} "
            "(once; cached)"
        )
        cmd = [
            tool,
            "--variant=minbase",
            f"--include={','.join(recipe.packages)}",
            recipe.suite,
            str(tree),
            recipe.mirror,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if out.returncode != 0:
            raise BaseUnavailable(
                f"debootstrap failed ({out.returncode}): {(out.stderr or out.stdout)[-500:]}"
            )
        for rel in TRIM:
            target = tree / rel
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        listing = subprocess.run(
            [
                "dpkg-query",
                f"--admindir={tree}/var/lib/dpkg",
                "-W",
                "-f",
                "${Package}=${Version}\n",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        (where / "packages.txt.tmp").write_text("".join(sorted(listing.splitlines(True))))
        tar_tmp = where / "rootfs.tar.tmp"
        subprocess.run(
            [
                "tar",
                "--numeric-owner",
                "--sort=name",
                "--mtime=@0",
                "--xattrs",
                "-C",
                str(tree),
                "-cf",
                str(tar_tmp),
                ".",
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
        tar_tmp.replace(where / "rootfs.tar")
        (where / "packages.txt.tmp").replace(where / "packages.txt")
    progress(f"base: cached {where / 'rootfs.tar'}")


def link_or_copy(src: Path, dest: Path) -> None:
    """`dest` as a hard link of `src` (a copy across filesystems)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)
