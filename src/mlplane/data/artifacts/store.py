"""ArtifactStore: the data SDK's artifact API. Authorizes every call for the acting principal on
the bucket (as Cloud Storage does), then calls the backend.

Permissions, as on GCS: stat/read need `storage.objects.get`, list `storage.objects.list`,
write `storage.objects.create`, and replacing an existing object also `storage.objects.delete`
(so an identity holding only create, like the `training` service account, can add artifacts but
never overwrite one: its writes carry `if_generation_match=0`), delete `storage.objects.delete`.
"""

from __future__ import annotations

import importlib
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from mlplane.apis.request import DryRunLog
from mlplane.data.artifacts import requests
from mlplane.data.artifacts.backend import StorageBackend
from mlplane.data.artifacts.errors import CorruptObject, ObjectNotFound, PreconditionFailed
from mlplane.data.artifacts.model import Digest, Listing, ObjectMeta, guess_content_type
from mlplane.data.artifacts.uri import GsUri, parse_gs_uri
from mlplane.data.identity import Caller
from mlplane.errors import PermissionDenied
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

GET, LIST = "storage.objects.get", "storage.objects.list"
CREATE, DELETE = "storage.objects.create", "storage.objects.delete"
BACKEND_ENV = "MLPLANE_ARTIFACTS_BACKEND"
# name -> (module, class) of the backends that need a cloud SDK, imported only when chosen
BACKENDS = {"gcs": ("mlplane.data.artifacts.gcs", "GcsBackend")}


def make_backend(kind: str | None, caller: Caller) -> StorageBackend:
    """`local` (`.mlplane/buckets` beside the project file) or `gcs`: the argument, else
    $MLPLANE_ARTIFACTS_BACKEND, else `[data] artifacts` in mlplane.toml (default `local`)."""
    from mlplane.data.settings import data_switch

    kind = (
        kind
        or os.environ.get(BACKEND_ENV)
        or data_switch(caller.project_file, "artifacts", "local")
    )
    if kind == "local":
        from mlplane.data.artifacts.local import LocalBackend

        return LocalBackend.for_project(caller.project_file)
    if kind in BACKENDS:
        # By name, as the provider registry does: the cloud SDK stays out of the static import
        # graph of everything that uses the store (the CLI's "Cloud SDKs" import contract).
        module, cls = BACKENDS[kind]
        backend: StorageBackend = getattr(importlib.import_module(module), cls)(caller.project)
        return backend
    from mlplane.errors import ConfigError

    known = ", ".join(["local", *BACKENDS])
    raise ConfigError(f"${BACKEND_ENV}", "", f"unknown artifact backend '{kind}' ({known})")


class _HashingWriter:
    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.digest = Digest()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.sink.write(data)


class ArtifactStore:
    def __init__(self, caller: Caller, backend: StorageBackend) -> None:
        self.caller = caller
        self.backend = backend

    @classmethod
    def open(
        cls,
        project_file: Path | str | None = None,
        principal: Principal | str | None = None,
        backend: StorageBackend | str | None = None,
    ) -> ArtifactStore:
        caller = Caller.resolve(project_file, principal)
        if backend is None or isinstance(backend, str):
            backend = make_backend(backend, caller)
        return cls(caller, backend)

    def _require(self, uri: GsUri, *permissions: str) -> None:
        self.caller.require(permissions, ResourceRef("bucket", uri.bucket, self.caller.project))

    def _may(self, uri: GsUri, permission: str) -> bool:
        ref = ResourceRef("bucket", uri.bucket, self.caller.project)
        return self.caller.authz.authorize(self.caller.principal, permission, ref).allowed

    # ------------------------------------------------------------------ reads

    def stat(self, uri: str) -> ObjectMeta:
        u = parse_gs_uri(uri)
        self._require(u, GET)
        return self.backend.stat(u.bucket, u.name)

    def list(self, uri: str, *, recursive: bool = False) -> Listing:
        """Objects under a prefix; unless `recursive`, deeper names roll up into prefixes."""
        u = parse_gs_uri(uri, prefix=True)
        self._require(u, LIST)
        return self.backend.list(u.bucket, u.name, None if recursive else "/")

    def read_to(self, uri: str, sink: BinaryIO) -> ObjectMeta:
        """Stream an object into `sink`, checking its size, MD5 and CRC32C as they arrive."""
        u = parse_gs_uri(uri)
        self._require(u, GET)
        writer = _HashingWriter(sink)
        meta = self.backend.read(u.bucket, u.name, writer)  # type: ignore[arg-type]
        problem = writer.digest.mismatch(meta)
        if problem:
            raise CorruptObject(f"{meta.uri}#{meta.generation}: {problem}")
        return meta

    def read_bytes(self, uri: str) -> bytes:
        buf = io.BytesIO()
        self.read_to(uri, buf)
        return buf.getvalue()

    def download(self, uri: str, dest: Path | str) -> tuple[ObjectMeta, Path]:
        """Copy an object to a local file (into `dest` when it is a directory), atomically:
        a temporary file beside the target, checked, fsynced, then renamed over it."""
        u = parse_gs_uri(uri)
        target = Path(dest)
        if target.is_dir() or str(dest).endswith(os.sep):
            target = target / u.basename
        self._require(u, GET)  # before creating anything
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                meta = self.read_to(uri, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return meta, target

    # ------------------------------------------------------------------ writes

    def _authorize_write(self, u: GsUri, if_generation_match: int | None) -> int | None:
        """Check create (and delete when replacing); an identity without delete may only
        create, so its write gets the must-not-exist precondition."""
        self._require(u, CREATE)
        if if_generation_match == 0 or self._may(u, DELETE):
            return if_generation_match
        if if_generation_match is not None:  # replacing a given generation
            self._require_replace(u)
        return 0

    def _require_replace(self, u: GsUri) -> None:
        try:
            self._require(u, CREATE, DELETE)
        except PermissionDenied as exc:
            raise PermissionDenied(
                f"{u} exists, and replacing an object needs storage.objects.delete too (as on "
                f"Cloud Storage); write a new name instead. {exc}",
                exc.decision,
            ) from None

    def write_from(
        self,
        source: BinaryIO,
        uri: str,
        *,
        content_type: str | None = None,
        if_generation_match: int | None = None,
    ) -> ObjectMeta:
        u = parse_gs_uri(uri)
        precondition = self._authorize_write(u, if_generation_match)
        try:
            meta = self.backend.write(
                u.bucket,
                u.name,
                source,
                content_type=content_type or guess_content_type(u.name),
                if_generation_match=precondition,
            )
        except PreconditionFailed:
            if precondition == 0 and if_generation_match is None:
                self._require_replace(u)  # it exists: replacing it needs delete
            raise
        self._audit("storage.objects.create", u, meta)
        return meta

    def _audit(self, method: str, u: GsUri, meta: ObjectMeta | None) -> None:
        """Record the event in the backend's own audit log, when it keeps one (the local store;
        Cloud Storage writes Cloud Audit Logs itself)."""
        audit = getattr(self.backend, "audit", None)
        if audit is None:
            return
        entry: dict[str, object] = {
            "method": method,
            "resource": f"gs://{u.bucket}/{u.name}",
            "principal": str(self.caller.principal),
            "origin": self.caller.origin,
            "detail": self.caller.detail,
        }
        if meta is not None:
            entry.update({"generation": meta.generation, "size": meta.size,
                          "md5Hash": meta.md5_hash, "crc32c": meta.crc32c})  # fmt: skip
        audit(entry)

    def write_bytes(
        self,
        uri: str,
        data: bytes,
        *,
        content_type: str | None = None,
        if_generation_match: int | None = None,
    ) -> ObjectMeta:
        return self.write_from(
            io.BytesIO(data),
            uri,
            content_type=content_type,
            if_generation_match=if_generation_match,
        )

    def upload(
        self,
        src: Path | str,
        uri: str,
        *,
        content_type: str | None = None,
        if_generation_match: int | None = None,
    ) -> ObjectMeta:
        """Copy a local file to `uri` (into it, when `uri` ends with '/')."""
        path = Path(src)
        u = parse_gs_uri(uri, prefix=True)
        if u.is_prefix:
            u = u.child(path.name)
        if not path.is_file():
            from mlplane.errors import ConfigError

            raise ConfigError(str(src), "", "no such file (directories are not copied)")
        with open(path, "rb") as f:
            return self.write_from(
                f, str(u), content_type=content_type, if_generation_match=if_generation_match
            )

    def delete(self, uri: str, *, if_generation_match: int | None = None) -> None:
        u = parse_gs_uri(uri)
        self._require(u, DELETE)
        self.backend.delete(u.bucket, u.name, if_generation_match=if_generation_match)
        self._audit("storage.objects.delete", u, None)

    def copy(
        self, src: str, dst: str, *, if_generation_match: int | None = None
    ) -> tuple[ObjectMeta, str]:
        """`cp`: local -> gs, gs -> local, or gs -> gs. Returns the object's metadata and
        where it landed."""
        from mlplane.data.artifacts.uri import is_gs_uri

        if is_gs_uri(src) and is_gs_uri(dst):
            s = parse_gs_uri(src)
            d = parse_gs_uri(dst, prefix=True)
            target = str(d.child(s.basename) if d.is_prefix else d)
            self._require(s, GET)
            with tempfile.TemporaryFile() as buf:
                meta = self.read_to(src, buf)
                buf.seek(0)
                new = self.write_from(
                    buf,
                    target,
                    content_type=meta.content_type,
                    if_generation_match=if_generation_match,
                )
            return new, new.uri
        if is_gs_uri(src):
            meta, path = self.download(src, dst)
            return meta, str(path)
        if is_gs_uri(dst):
            meta = self.upload(src, dst, if_generation_match=if_generation_match)
            return meta, meta.uri
        from mlplane.errors import ConfigError

        raise ConfigError("cp", "", f"'{src}' -> '{dst}': one side must be a gs:// URI")

    # ------------------------------------------------------------------ dry runs

    def rehearse_copy(
        self, src: str, dst: str, log: DryRunLog, *, if_generation_match: int | None = None
    ) -> None:
        """`cp --dry-run`: authorize as `copy` would, then log the Cloud Storage calls the gcs
        backend would make (artifacts/requests.py); write nothing. Fails as `copy` would when
        what it can read says so (a precondition that cannot hold)."""
        from mlplane.data.artifacts.uri import is_gs_uri

        if is_gs_uri(src) and not is_gs_uri(dst):
            meta = self.stat(src)
            log.note(
                f"a download: reads {meta.uri}#{meta.generation} ({meta.size} bytes) and writes "
                f"{dst} on this machine; no call changes anything"
            )
            return
        if not is_gs_uri(dst):
            from mlplane.errors import ConfigError

            raise ConfigError("cp", "", f"'{src}' -> '{dst}': one side must be a gs:// URI")
        d = parse_gs_uri(dst, prefix=True)
        if is_gs_uri(src):
            meta = self.stat(src)
            u = d.child(parse_gs_uri(src).basename) if d.is_prefix else d
            size, what, ctype = meta.size, f"of {meta.uri}#{meta.generation}", meta.content_type
            md5, crc = meta.md5_hash, meta.crc32c
            log.note(f"read the metadata of {meta.uri} (the copy downloads it, then uploads)")
        else:
            path = Path(src)
            if not path.is_file():
                from mlplane.errors import ConfigError

                raise ConfigError(str(src), "", "no such file (directories are not copied)")
            u = d.child(path.name) if d.is_prefix else d
            digest = Digest()
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            size, what, ctype = digest.size, f"from {src}", guess_content_type(u.name)
            md5, crc = digest.md5_hash, digest.crc32c
        source = f"{what}, md5 {md5}, crc32c {crc}"
        self.rehearse_write(
            str(u), log, size=size, source=source, content_type=ctype,
            if_generation_match=if_generation_match, md5=md5, crc32c=crc,
        )  # fmt: skip

    def rehearse_write(
        self,
        uri: str,
        log: DryRunLog,
        *,
        size: int | None,
        source: str,
        content_type: str,
        if_generation_match: int | None,
        md5: str = "<its MD5>",
        crc32c: str = "<its CRC32C>",
    ) -> None:
        """Authorize a write as `write_from` would; log the upload the gcs backend would make
        (`size` None: not known yet)."""
        u = parse_gs_uri(uri)
        precondition = self._authorize_write(u, if_generation_match)
        self._note_backend(log)
        self._check_precondition(u, precondition, implicit=if_generation_match is None, log=log)
        calls = requests.upload(
            u.bucket, u.name, content_type=content_type, if_generation_match=precondition,
            size=size, source=source, md5=md5, crc32c=crc32c,
        )  # fmt: skip
        for call in calls:
            log.send(call)

    def rehearse_delete(
        self, uri: str, log: DryRunLog, *, if_generation_match: int | None = None
    ) -> None:
        """`rm --dry-run`: authorize as `delete` would, log the DELETE; delete nothing."""
        u = parse_gs_uri(uri)
        self._require(u, DELETE)
        self._note_backend(log)
        if self._may(u, GET):  # the real delete fails on a missing object: so does this
            current = self.backend.stat(u.bucket, u.name)
            if if_generation_match is not None and current.generation != if_generation_match:
                raise PreconditionFailed(str(u), if_generation_match, current.generation)
        log.send(requests.delete(u.bucket, u.name, if_generation_match=if_generation_match))

    def _note_backend(self, log: DryRunLog) -> None:
        if self.backend.name != "gcs":
            log.note(
                f"artifacts backend: {self.backend.name} (no HTTP); below, the Cloud Storage "
                "calls the gcs backend would make"
            )

    def _check_precondition(
        self, u: GsUri, precondition: int | None, *, implicit: bool, log: DryRunLog
    ) -> None:
        """Where the caller may read the target, fail now as the write would fail later."""
        if precondition is None:
            return
        if not self._may(u, GET):
            log.note(f"{u}: not readable by you; the server checks ifGenerationMatch")
            return
        try:
            current = self.backend.stat(u.bucket, u.name).generation
        except ObjectNotFound:
            current = 0
        if current != precondition:
            if implicit and precondition == 0:
                self._require_replace(u)  # it exists: replacing it needs delete
            raise PreconditionFailed(str(u), precondition, current)
