"""Cloud Storage behind the backend protocol, on google-cloud-storage (the `gcs` extra).

The client library is imported here only, and only when a GcsBackend is made; its exceptions are
mapped to mlplane's at this boundary. With `STORAGE_EMULATOR_HOST` set (tests, against
gcp-storage-emulator) the client talks to the emulator with anonymous credentials.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from mlplane.data.artifacts.errors import ObjectNotFound, PreconditionFailed
from mlplane.data.artifacts.model import DEFAULT_CONTENT_TYPE, Listing, ObjectMeta
from mlplane.errors import MlplaneError, PermanentError, PermissionDenied, TransientError


class GcsBackend:
    name = "gcs"

    def __init__(self, project: str, client: Any | None = None) -> None:
        if client is None:
            try:  # via importlib: typed Any whether or not the client is installed
                storage = importlib.import_module("google.cloud.storage")
            except ImportError:
                raise PermanentError(
                    "the Cloud Storage backend needs google-cloud-storage: "
                    "pip install 'mlplane[gcs]'"
                ) from None
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                creds = importlib.import_module("google.auth.credentials").AnonymousCredentials()
                client = storage.Client(project=project, credentials=creds)
            else:
                client = storage.Client(project=project)
        self.client = client

    @contextlib.contextmanager
    def _mapped(self, uri: str, expected: int | None = None) -> Iterator[None]:
        """Translate google-api-core and transport errors into mlplane's taxonomy."""
        from google.api_core import exceptions as gexc

        try:
            yield
        except MlplaneError:
            raise
        except gexc.NotFound as exc:
            raise ObjectNotFound(uri, _message(exc)) from None
        except gexc.PreconditionFailed:
            raise PreconditionFailed(uri, expected, None) from None
        except (gexc.Forbidden, gexc.Unauthorized) as exc:
            denied = f"{uri}: Cloud Storage denied the call: {_message(exc)}"
            raise PermissionDenied(denied) from None
        except (gexc.TooManyRequests, gexc.ServerError) as exc:
            raise TransientError(f"{uri}: Cloud Storage: {_message(exc)}", delay=2.0) from None
        except gexc.GoogleAPICallError as exc:
            raise PermanentError(f"{uri}: Cloud Storage: {_message(exc)}") from None
        except (ConnectionError, TimeoutError) as exc:
            raise TransientError(f"{uri}: Cloud Storage unreachable: {exc}") from None
        except Exception as exc:  # requests' transport errors, without importing requests
            if type(exc).__module__.startswith(("requests", "urllib3")):
                raise TransientError(f"{uri}: Cloud Storage unreachable: {exc}") from None
            raise

    def stat(self, bucket: str, name: str) -> ObjectMeta:
        uri = f"gs://{bucket}/{name}"
        with self._mapped(uri):
            blob = self.client.bucket(bucket).get_blob(name)
        if blob is None:
            raise ObjectNotFound(uri)
        return _meta(bucket, blob)

    def list(self, bucket: str, prefix: str, delimiter: str | None) -> Listing:
        with self._mapped(f"gs://{bucket}/{prefix}"):
            pages = self.client.list_blobs(bucket, prefix=prefix or None, delimiter=delimiter)
            objects = tuple(_meta(bucket, b) for b in pages)
            prefixes = tuple(sorted(pages.prefixes))
        return Listing(objects, prefixes)

    def read(self, bucket: str, name: str, sink: BinaryIO) -> ObjectMeta:
        meta = self.stat(bucket, name)
        with self._mapped(meta.uri):
            blob = self.client.bucket(bucket).blob(name, generation=meta.generation)
            blob.download_to_file(sink)
        return meta

    def write(
        self,
        bucket: str,
        name: str,
        source: BinaryIO,
        *,
        content_type: str,
        if_generation_match: int | None,
    ) -> ObjectMeta:
        uri = f"gs://{bucket}/{name}"
        with self._mapped(uri, if_generation_match):
            blob = self.client.bucket(bucket).blob(name)
            blob.upload_from_file(
                source, content_type=content_type, if_generation_match=if_generation_match
            )
            if blob.generation is None or blob.md5_hash is None:
                blob.reload()
        return _meta(bucket, blob)

    def delete(self, bucket: str, name: str, *, if_generation_match: int | None) -> None:
        with self._mapped(f"gs://{bucket}/{name}", if_generation_match):
            self.client.bucket(bucket).blob(name).delete(if_generation_match=if_generation_match)


def _message(exc: Any) -> str:
    return str(getattr(exc, "message", None) or exc)


def _meta(bucket: str, blob: Any) -> ObjectMeta:
    updated = blob.updated or datetime.now(UTC)
    return ObjectMeta(
        bucket=bucket,
        name=blob.name,
        size=int(blob.size or 0),
        md5_hash=blob.md5_hash or "",
        crc32c=blob.crc32c or "",
        generation=int(blob.generation or 0),
        updated=updated if updated.tzinfo else updated.replace(tzinfo=UTC),
        content_type=blob.content_type or DEFAULT_CONTENT_TYPE,
    )
