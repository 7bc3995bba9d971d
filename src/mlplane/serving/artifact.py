"""Model artifacts: what training writes and the model server loads.

Two layouts, both verified against a checksums sidecar before anything is parsed:

- a directory: `model.json` (the manifest), any other files a custom predictor needs, and
  `checksums.json` listing every file: `{"files": {"model.json": {size, sha256, md5Hash, crc32c}}}`;
- a single JSON file `X.json` (the manifest) with the sidecar `X.json.checksums.json`.

The manifest is `{"format", "name", "version", ...}`; `"predictor": "module:Class"` names a custom
predictor (an importable class, see `predictor.py`), otherwise the format's built-in one is used.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mlplane.errors import PermanentError
from mlplane.serving.checksums import FileChecksums

FORMAT_LINEAR = "mlplane.linear/v1"
MANIFEST = "model.json"
CHECKSUMS = "checksums.json"
SIDECAR_SUFFIX = ".checksums.json"
CHECKSUMS_FORMAT = "mlplane.checksums/v1"
_PREDICTOR_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class ArtifactError(PermanentError):
    """A model artifact is missing, corrupt or malformed; the message names the file."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = str(path)
        super().__init__(f"model artifact {path}: {message}")


@dataclass(frozen=True)
class Artifact:
    """A loaded, verified artifact. `root` is the directory holding its files."""

    path: Path
    root: Path
    manifest_name: str
    manifest: Mapping[str, Any]
    checksums: Mapping[str, FileChecksums]

    @property
    def format(self) -> str:
        return str(self.manifest["format"])

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def predictor(self) -> str | None:
        value = self.manifest.get("predictor")
        return None if value is None else str(value)

    def read_bytes(self, name: str) -> bytes:
        """A file of the artifact, re-verified against its recorded checksums."""
        want = self.checksums.get(name)
        if want is None:
            raise ArtifactError(self.root / name, "not listed in the artifact's checksums")
        data = _read(self.root / name)
        bad = want.mismatch(data)
        if bad:
            raise ArtifactError(self.root / name, f"corrupt: {bad}")
        return data


def check_manifest(manifest: object, source: Path | str) -> Mapping[str, Any]:
    """The manifest's common fields; raises ArtifactError naming the bad field."""
    if not isinstance(manifest, dict):
        raise ArtifactError(source, "the manifest must be a JSON object")
    for key in ("format", "name", "version"):
        value = manifest.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ArtifactError(source, f"field '{key}': expected a non-empty string")
    predictor = manifest.get("predictor")
    if predictor is not None and not (
        isinstance(predictor, str) and _PREDICTOR_RE.fullmatch(predictor)
    ):
        raise ArtifactError(source, "field 'predictor': expected 'package.module:Class'")
    if "created" in manifest and not isinstance(manifest["created"], str):
        raise ArtifactError(source, "field 'created': expected an ISO 8601 timestamp string")
    if "metrics" in manifest and not isinstance(manifest["metrics"], dict):
        raise ArtifactError(source, "field 'metrics': expected an object")
    return manifest


def write_artifact(
    out: Path | str, manifest: Mapping[str, Any], files: Mapping[str, bytes] | None = None
) -> Path:
    """Write `manifest` (and `files`, directory layout only) with their checksums; returns `out`.

    `out` ending in `.json` selects the single-file layout. Each file is written to a temporary
    name and renamed into place, checksums last, so a reader never verifies a half-written file.
    """
    out = Path(out)
    check_manifest(dict(manifest), out)
    body = (json.dumps(manifest, indent=2) + "\n").encode()
    if out.suffix == ".json":
        if files:
            raise ArtifactError(out, "extra files need the directory layout (a path without .json)")
        out.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(out, body)
        _atomic_write(out.with_name(out.name + SIDECAR_SUFFIX), _checksums_json({out.name: body}))
        return out
    contents = {**(files or {}), MANIFEST: body}
    for name in contents:
        _check_relative(name, out)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(out / name, data)
    _atomic_write(out / CHECKSUMS, _checksums_json(contents))
    return out


def load_artifact(path: Path | str) -> Artifact:
    """Load and verify an artifact (directory or `.json` file); ArtifactError names what failed."""
    path = Path(path)
    if path.is_dir():
        root, manifest_name, sidecar = path, MANIFEST, path / CHECKSUMS
    elif path.is_file():
        root, manifest_name = path.parent, path.name
        sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    else:
        raise ArtifactError(
            path, "does not exist (expected a directory holding model.json, or a .json file)"
        )
    checksums = _read_checksums(sidecar)
    if manifest_name not in checksums:
        raise ArtifactError(sidecar, f"does not list the manifest '{manifest_name}'")
    manifest_bytes = b""
    for name, want in checksums.items():
        data = _read(root / name)
        bad = want.mismatch(data)
        if bad:
            raise ArtifactError(root / name, f"corrupt: {bad}")
        if name == manifest_name:
            manifest_bytes = data
    try:
        manifest = json.loads(manifest_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(root / manifest_name, f"not valid JSON: {exc}") from None
    check_manifest(manifest, root / manifest_name)
    return Artifact(path, root, manifest_name, manifest, checksums)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(path, "missing (listed in the artifact's checksums)") from None
    except OSError as exc:
        raise ArtifactError(path, f"cannot be read: {exc.strerror}") from None


def _read_checksums(sidecar: Path) -> dict[str, FileChecksums]:
    try:
        doc = json.loads(sidecar.read_bytes())
    except FileNotFoundError:
        raise ArtifactError(
            sidecar, "missing: every artifact carries a checksums sidecar (see write_artifact)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(sidecar, f"unreadable checksums file: {exc}") from None
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict) or not files:
        raise ArtifactError(sidecar, "field 'files': expected an object of file -> checksums")
    out: dict[str, FileChecksums] = {}
    for name, value in files.items():
        _check_relative(name, sidecar)
        try:
            out[name] = FileChecksums.from_json(value)
        except ValueError as exc:
            raise ArtifactError(sidecar, f"field 'files.{name}': {exc}") from None
    return out


def _check_relative(name: str, source: Path) -> None:
    p = PurePosixPath(name)
    if not name or p.is_absolute() or ".." in p.parts or "\\" in name:
        raise ArtifactError(
            source, f"file name '{name}' must be a relative path inside the artifact"
        )


def _checksums_json(contents: Mapping[str, bytes]) -> bytes:
    files = {name: FileChecksums.of(data).to_json() for name, data in sorted(contents.items())}
    return (json.dumps({"format": CHECKSUMS_FORMAT, "files": files}, indent=2) + "\n").encode()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
