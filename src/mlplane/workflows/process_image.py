"""The image a process's instances run: what a training VM and a serving template name.

On Google a VM runs a container of its process's image (`mlplane-image`, pulled by the
generated startup script of a Container-Optimized OS VM); the image is named by its Artifact
Registry name and pinned by digest, the digest `latest` names when the instance (template) is
written. Locally the same name is written: the agent's registry stands in for Artifact
Registry's host, and the agent runs the workload as a container of that image when a Docker
engine is reachable (else as a process, as the default install does). No image is named when
the registry holds none for the process (nothing built yet, or no local registry): the workload
then runs as a process locally, and on Google its startup script says to build the images.
"""

from __future__ import annotations

from mlplane.apis.credentials import CredentialError
from mlplane.errors import MlplaneError
from mlplane.model.compute import InstanceTemplate, RevisionNames
from mlplane.model.images import (
    ImageRef,
    artifact_registry_host,
    repository_id,
    repository_path,
)
from mlplane.model.workload import IMAGE_KEY
from mlplane.workflows.session import Session


def process_image(session: Session, name: str) -> str | None:
    """`REGION-docker.pkg.dev/PROJECT/REPOSITORY/NAME@sha256:...` for image `name` (`training`,
    `serving`), resolved from its `latest` tag as the caller; None when there is none."""
    from mlplane.images.registry import RegistryClient
    from mlplane.workflows import compose

    project = session.loaded.project
    ar_host = artifact_registry_host(project.project.region)
    local = compose.local_registry(session)
    if compose.provider_name(session) == "local" and not local:
        return None  # no local registry runs: nothing was built here
    endpoints = getattr(session.api, "endpoints", None)
    if not local and not (endpoints is not None and endpoints.is_google):
        return None  # Google's APIs stand somewhere else (a test's fake): so would its registry
    repo = repository_path(ar_host, project.project.id, repository_id(project))
    try:
        client = RegistryClient(local or ar_host, compose.access_token(session.api))
        digest = client.digest(ImageRef.parse(f"{local or ar_host}{repo[len(ar_host) :]}/{name}"))
    except (MlplaneError, CredentialError, OSError):
        # unreachable, refused, or no token: the instance names no image (the create that
        # follows says what is wrong with the caller, as without images)
        return None
    return f"{repo}/{name}@{digest}" if digest else None


def revision_image(session: Session, service: str, revision: str) -> str | None:
    """A serving revision's image: the one it was deployed with when its template is recorded
    (a revision never changes: a re-run converges on it whatever was built since), else the
    serving image `latest` names now."""
    template = RevisionNames(service, revision).template
    for rec in session.store.load().values():
        spec = rec.spec
        if isinstance(spec, InstanceTemplate) and spec.name == template:
            items = spec.properties.metadata.items if spec.properties.metadata else ()
            return next((i.value for i in items if i.key == IMAGE_KEY), None)
    return process_image(session, "serving")
