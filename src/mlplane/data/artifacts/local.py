"""Buckets as directories under the project's state dir: `.mlplane/buckets/BUCKET/`.

Layout: an object `a/b/model.pt` lives in `BUCKET/a/b/` as `model.pt#meta` (its metadata, JSON)
and `model.pt#g<GENERATION>` (the bytes of the live generation). Each path component is
percent-encoded (so `#` never occurs in one, and `a` and `a/b` can both be objects, as in GCS).

A write streams into a temporary file beside the object (fsynced, no lock held), then, under
the bucket's lock, checks `if_generation_match`, renames the bytes to their generation's file
and commits by atomically replacing `#meta` (fsynced, and the directory too). A crash before the
commit leaves the previous generation live and only an unreferenced temporary file; readers
follow `#meta`, so they never see a partial object. Generations are microsecond timestamps, as
on GCS, forced strictly above the previous generation of the same name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from mlplane.data.artifacts.errors import ObjectNotFound, PreconditionFailed
from mlplane.data.artifacts.model import CHUNK, Digest, Listing, ObjectMeta
from mlplane.errors import PermanentError

META = "#meta"
LOCK = "#lock"
MAX_COMPONENT = 240  # bytes, encoded; leaves room for the suffixes within NAME_MAX (255)
_rename = os.replace  # one seam: tests fail it to simulate a crash between write and commit


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def split_listing(names: list[ObjectMeta], prefix: str, delimiter: str | None) -> Listing:
    """GCS list semantics over name-sorted objects: with a delimiter, names with another
    delimiter after the prefix roll up into a common prefix."""
    objects: list[ObjectMeta] = []
    prefixes: dict[str, None] = {}
    for meta in names:
        if not meta.name.startswith(prefix):
            continue
        rest = meta.name[len(prefix) :]
        cut = rest.find(delimiter) if delimiter else -1
        if delimiter and cut >= 0:
            prefixes[prefix + rest[: cut + len(delimiter)]] = None
        else:
            objects.append(meta)
    return Listing(tuple(objects), tuple(sorted(prefixes)))


class LocalBackend:
    """The local store rooted at `root` (normally `<project dir>/.mlplane/buckets`)."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_project(cls, project_file: Path) -> LocalBackend:
        return cls(Path(project_file).resolve().parent / ".mlplane" / "buckets")

    def audit(self, entry: dict[str, object]) -> None:
        """Append to the store's own audit log (`.audit.jsonl`; see `audit.py`)."""
        from mlplane.data.artifacts.audit import record

        record(self.root, entry)

    # ------------------------------------------------------------------ paths

    def _place(self, bucket: str, name: str) -> tuple[Path, str]:
        """(directory, encoded last component) of an object; names are validated upstream."""
        parts = [quote(p, safe="") for p in name.split("/")]
        for p in parts:
            if not p or p in (".", "..") or len(p.encode()) > MAX_COMPONENT:
                raise PermanentError(
                    f"gs://{bucket}/{name}: a path component of this name cannot be stored "
                    f"locally (empty, '.', '..' or longer than {MAX_COMPONENT} bytes encoded)"
                )
        return self.root.joinpath(bucket, *parts[:-1]), parts[-1]

    @contextlib.contextmanager
    def _lock(self, bucket: str) -> Iterator[None]:
        path = self.root / bucket
        path.mkdir(parents=True, exist_ok=True)
        with open(path / LOCK, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ metadata

    def _load(self, bucket: str, meta_path: Path) -> ObjectMeta | None:
        try:
            raw = json.loads(meta_path.read_text())
        except FileNotFoundError:
            return None
        return ObjectMeta(
            bucket=bucket,
            name=raw["name"],
            size=raw["size"],
            md5_hash=raw["md5Hash"],
            crc32c=raw["crc32c"],
            generation=int(raw["generation"]),
            updated=datetime.fromisoformat(raw["updated"]),
            content_type=raw["contentType"],
        )

    @staticmethod
    def _dump(meta: ObjectMeta) -> str:
        return json.dumps(
            {
                "name": meta.name,
                "size": meta.size,
                "md5Hash": meta.md5_hash,
                "crc32c": meta.crc32c,
                "generation": str(meta.generation),  # a string, as in the GCS JSON API
                "updated": meta.updated.isoformat(),
                "contentType": meta.content_type,
            },
            indent=1,
        )

    # ------------------------------------------------------------------ protocol

    @staticmethod
    def _create(d: Path, tmp: Path) -> BinaryIO:
        try:
            return open(tmp, "xb")
        except FileNotFoundError:  # a concurrent delete pruned the (then empty) directory
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            return open(tmp, "xb")

    def stat(self, bucket: str, name: str) -> ObjectMeta:
        d, c = self._place(bucket, name)
        meta = self._load(bucket, d / (c + META))
        if meta is None:
            raise ObjectNotFound(f"gs://{bucket}/{name}")
        return meta

    def list(self, bucket: str, prefix: str, delimiter: str | None) -> Listing:
        base = self.root / bucket
        found: list[ObjectMeta] = []
        for dirpath, _dirs, files in os.walk(base):
            for f in files:
                if f.endswith(META):
                    meta = self._load(bucket, Path(dirpath) / f)
                    if meta is not None and meta.name.startswith(prefix):
                        found.append(meta)
        found.sort(key=lambda m: m.name)
        return split_listing(found, prefix, delimiter)

    def read(self, bucket: str, name: str, sink: BinaryIO) -> ObjectMeta:
        d, c = self._place(bucket, name)
        for _ in range(5):  # a concurrent overwrite may retire the generation we looked up
            meta = self.stat(bucket, name)
            try:
                with open(d / f"{c}#g{meta.generation}", "rb") as f:
                    while chunk := f.read(CHUNK):
                        sink.write(chunk)
                return meta
            except FileNotFoundError:
                continue
        raise ObjectNotFound(f"gs://{bucket}/{name}", "changed repeatedly while being read")

    def write(
        self,
        bucket: str,
        name: str,
        source: BinaryIO,
        *,
        content_type: str,
        if_generation_match: int | None,
    ) -> ObjectMeta:
        d, c = self._place(bucket, name)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = uuid.uuid4().hex
        tmp, tmp_meta = d / f"{c}#tmp-{token}", d / f"{c}#tmpmeta-{token}"
        data_path: Path | None = None
        digest = Digest()
        committed = False
        try:
            with self._create(d, tmp) as f:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            with self._lock(bucket):
                current = self._load(bucket, d / (c + META))
                current_gen = current.generation if current else 0
                if if_generation_match is not None and if_generation_match != current_gen:
                    raise PreconditionFailed(
                        f"gs://{bucket}/{name}", if_generation_match, current_gen
                    )
                generation = max(time.time_ns() // 1000, current_gen + 1)
                data_path = d / f"{c}#g{generation}"
                _rename(tmp, data_path)
                meta = ObjectMeta(
                    bucket=bucket,
                    name=name,
                    size=digest.size,
                    md5_hash=digest.md5_hash,
                    crc32c=digest.crc32c,
                    generation=generation,
                    updated=datetime.now(UTC),
                    content_type=content_type,
                )
                with open(tmp_meta, "x") as mf:
                    mf.write(self._dump(meta))
                    mf.flush()
                    os.fsync(mf.fileno())
                _rename(tmp_meta, d / (c + META))  # the commit point
                committed = True
                fsync_dir(d)
        finally:
            tmp.unlink(missing_ok=True)
            tmp_meta.unlink(missing_ok=True)
            if not committed and data_path is not None:
                data_path.unlink(missing_ok=True)
        if current is not None:
            (d / f"{c}#g{current.generation}").unlink(missing_ok=True)
        return meta

    def delete(self, bucket: str, name: str, *, if_generation_match: int | None) -> None:
        d, c = self._place(bucket, name)
        uri = f"gs://{bucket}/{name}"
        with self._lock(bucket):
            current = self._load(bucket, d / (c + META))
            if current is None:
                raise ObjectNotFound(uri)
            if if_generation_match is not None and if_generation_match != current.generation:
                raise PreconditionFailed(uri, if_generation_match, current.generation)
            (d / (c + META)).unlink()
            fsync_dir(d)
            (d / f"{c}#g{current.generation}").unlink(missing_ok=True)
            bucket_dir = self.root / bucket
            while d != bucket_dir:  # prune directories the object leaves empty
                try:
                    d.rmdir()
                except OSError:
                    break
                d = d.parent
