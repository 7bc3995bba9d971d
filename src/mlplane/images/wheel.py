"""mlplane's own wheel, made from the package this interpreter imports (an editable checkout or
an installed copy): the images run the mlplane that builds them.

The wheel is reproducible: files in sorted order with a fixed timestamp, so the same source
gives the same bytes, and the image layer that installs it is a cache hit when nothing changed.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import zipfile
from pathlib import Path

import mlplane

_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__"}


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _metadata(version: str) -> str:
    lines = ["Metadata-Version: 2.1", "Name: mlplane", f"Version: {version}"]
    try:
        dist = md.distribution("mlplane")
        python = dist.metadata["Requires-Python"]
        if python:
            lines.append(f"Requires-Python: {python}")
        lines += [f"Requires-Dist: {r}" for r in dist.requires or ()]
        lines += [f"Provides-Extra: {e}" for e in dist.metadata.get_all("Provides-Extra") or ()]
    except md.PackageNotFoundError:
        pass
    return "\n".join(lines) + "\n"


def package_files(root: Path) -> list[Path]:
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS for part in rel.parts) or path.suffix in (".pyc", ".pyo"):
            continue
        if path.is_file() and not path.is_symlink():
            out.append(path)
    return out


def build_wheel(dest_dir: Path) -> Path:
    """Write mlplane-VERSION-py3-none-any.whl into `dest_dir`; its path."""
    root = Path(mlplane.__file__).resolve().parent
    version = mlplane.__version__
    info = f"mlplane-{version}.dist-info"
    entries: list[tuple[str, bytes]] = [
        (f"mlplane/{p.relative_to(root).as_posix()}", p.read_bytes()) for p in package_files(root)
    ]
    entries += [
        (f"{info}/METADATA", _metadata(version).encode()),
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: mlplane\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        ),
        (f"{info}/entry_points.txt", b"[console_scripts]\nmlplane = mlplane.cli.main:entrypoint\n"),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    record += f"{info}/RECORD,,\n"
    entries.append((f"{info}/RECORD", record.encode()))
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"mlplane-{version}-py3-none-any.whl"
    tmp = path.with_suffix(".tmp")
    # stored, not deflated: it only travels into a build context, and compressing it was most
    # of a no-change rebuild's staging time
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries:
            item = zipfile.ZipInfo(name, _EPOCH)
            item.external_attr = 0o644 << 16
            item.compress_type = zipfile.ZIP_STORED
            zf.writestr(item, data)
    tmp.replace(path)
    return path
