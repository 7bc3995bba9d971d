"""References to the resources a permission is checked on."""

from __future__ import annotations

from mlplane.model.value import Value

# Kinds a grant can be scoped to, and their IAM resource-name shapes.
SCOPE_KINDS = ("project", "bucket", "secret", "serviceAccount", "repository", "endpointsService")


class ResourceRef(Value):
    """A resource an IAM check is about.

    `kind` is one of SCOPE_KINDS for resources that carry their own IAM policy, or a Compute
    Engine-style kind (`instance`, `instanceTemplate`, `urlMap`, `trigger`, ...) for resources that
    inherit the project's policy. `name` is the resource's short name (a bucket name, an account
    email, an instance name); `project` is the GCP project id.
    """

    __slots__ = ("kind", "name", "project")
    kind: str
    name: str
    project: str

    def __init__(self, kind: str, name: str = "", project: str = "") -> None:
        self._set(kind=kind, name=name, project=project)

    @classmethod
    def project_root(cls, project: str) -> ResourceRef:
        return cls("project", project, project)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind
