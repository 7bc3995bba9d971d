"""Pins for an image, written from the installed environment (docs/decisions/1701).

The closure of an image's top-level requirements (`mlplane[data]`, ...) is walked through the
installed distributions' own metadata (`Requires-Dist`, markers evaluated for this platform
and the extras asked for); each distribution is pinned at the version installed here, the one
the tests ran with. A pin whose `Requires-Python` excludes the base image's Python (Debian
bookworm's 3.11.2) is replaced by the newest release at or below it that admits that Python,
as pip chooses it (`pip download --python-version 3.11.2`), and the lock says so beside it.

    # mlplane images: pins of 'training', from the installed environment (Python 3.11.7)
    # top level: mlplane[data]; checked against the base's Python 3.11.2
    annotated-types==0.8.0
    soupsieve==2.6  # installed 4.1.4 requires Python >=3.11.5
"""

from __future__ import annotations

import importlib.metadata as md
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from mlplane.errors import ConfigError
from mlplane.model.images import BASE_PYTHON, ImageDef

_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s#]+)\s*(?:#\s*(.*))?$")
Resolve = Callable[[str, str], str]  # (name, installed version) -> a version admitting the base


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    note: str = ""  # why it differs from what is installed

    def line(self) -> str:
        return f"{self.name}=={self.version}" + (f"  # {self.note}" if self.note else "")


@dataclass(frozen=True)
class Lock:
    image: str
    requires: tuple[str, ...]
    pins: tuple[Pin, ...]

    def render(self) -> str:
        head = (
            f"# mlplane images: pins of '{self.image}', from the installed environment "
            f"(Python {platform.python_version()}).\n"
            f"# top level: {', '.join(self.requires) or '(none: the standard library)'}; "
            f"checked against the base's Python {BASE_PYTHON}. "
            "Regenerate: `mlplane images write`.\n"
        )
        return head + "".join(p.line() + "\n" for p in self.pins)

    @classmethod
    def parse(cls, image: str, text: str, where: str) -> Lock:
        pins: list[Pin] = []
        requires: tuple[str, ...] = ()
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if line.startswith("# top level:"):
                top = line.removeprefix("# top level:").split(";")[0].strip()
                requires = tuple(r.strip() for r in top.split(",") if "(" not in r and r.strip())
            if not line or line.startswith("#"):
                continue
            m = _LINE.match(line)
            if m is None:
                raise ConfigError(where, f"line {number}", f"'{line}' is not NAME==VERSION")
            pins.append(Pin(canonical(m.group(1)), m.group(2), m.group(3) or ""))
        return cls(image, requires, tuple(pins))


def _installed() -> dict[str, md.Distribution]:
    out: dict[str, md.Distribution] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(canonical(name), dist)
    return out


def closure(requires: Iterable[str], dists: Mapping[str, md.Distribution]) -> dict[str, str]:
    """name -> installed version of every distribution `requires` needs (mlplane excluded:
    its own wheel is installed after the pins)."""
    env = {k: str(v) for k, v in default_environment().items()}
    extras_of: dict[str, set[str]] = {}
    todo: list[tuple[str, set[str]]] = []
    for text in requires:
        req = Requirement(text)
        todo.append((canonical(req.name), set(req.extras)))
    while todo:
        name, extras = todo.pop()
        dist = dists.get(name)
        if dist is None:
            raise ConfigError(
                "the installed environment", name, "is required by an image but not installed"
            )
        seen = extras_of.get(name)
        if seen is not None and extras <= seen:
            continue
        extras_of[name] = (seen or set()) | extras
        for text in dist.requires or ():
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            wanted = req.marker is None or any(
                req.marker.evaluate({**env, "extra": extra})
                for extra in ("", *sorted(extras_of[name]))
            )
            if wanted:
                todo.append((canonical(req.name), set(req.extras)))
    extras_of.pop("mlplane", None)
    return {name: str(dists[name].version) for name in sorted(extras_of)}


def pip_download(dest: str, requirements: list[str]) -> list[str]:
    """`pip download` of wheels alone (no dependencies) for the base's Python into `dest`."""
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", BASE_PYTHON, "--disable-pip-version-check", "-q", "--dest", dest,
        *requirements,
    ]  # fmt: skip


def pip_resolve(name: str, installed: str) -> str:
    """The newest release of `name` at or below `installed` that admits the base's Python, as
    pip picks it from the configured index."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = pip_download(tmp, [f"{name}<={installed}"])
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        files = list(Path(tmp).glob("*.whl"))
        if out.returncode != 0 or not files:
            raise ConfigError(
                "the installed environment",
                name,
                f"{installed} does not admit Python {BASE_PYTHON} and pip found no release "
                f"that does: {out.stderr.strip()[-300:]}",
            )
        return files[0].name.split("-")[1]


def lock_for(
    image: ImageDef,
    resolve: Resolve = pip_resolve,
    dists: Mapping[str, md.Distribution] | None = None,
) -> Lock:
    """The image's lock from the installed environment."""
    dists = _installed() if dists is None else dists
    base = Version(BASE_PYTHON)
    pins = []
    for name, version in closure(image.requires, dists).items():
        spec = dists[name].metadata["Requires-Python"]
        if spec and base not in SpecifierSet(spec):
            chosen = resolve(name, version)
            pins.append(Pin(name, chosen, f"installed {version} requires Python {spec}"))
        else:
            pins.append(Pin(name, version))
    return Lock(image.name, image.requires, tuple(pins))
