"""Artifacts: Cloud Storage buckets behind `gs://BUCKET/PATH` URIs, for workload code and the
CLI. Locally, buckets are directories under the project's state dir (`.mlplane/buckets/`);
on GCP, Cloud Storage itself. Every call is authorized for the acting principal.

    store = ArtifactStore.open()          # the acting principal, the project's local buckets
    meta = store.upload("model.pt", "gs://acme-ml-mlplane-artifacts/runs/7/model.pt")
    data = store.read_bytes(meta.uri)
"""

from mlplane.data.artifacts.backend import StorageBackend
from mlplane.data.artifacts.errors import (
    CorruptObject,
    InvalidUri,
    ObjectNotFound,
    PreconditionFailed,
)
from mlplane.data.artifacts.model import Listing, ObjectMeta
from mlplane.data.artifacts.store import ArtifactStore, make_backend
from mlplane.data.artifacts.uri import GsUri, is_gs_uri, parse_gs_uri

__all__ = [
    "ArtifactStore",
    "CorruptObject",
    "GsUri",
    "InvalidUri",
    "Listing",
    "ObjectMeta",
    "ObjectNotFound",
    "PreconditionFailed",
    "StorageBackend",
    "is_gs_uri",
    "make_backend",
    "parse_gs_uri",
]
