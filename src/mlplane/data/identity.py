"""Who is acting, for the data SDK: a workload's service account (from its metadata endpoint,
as on GCP), an explicit principal (CI pipelines running as a trigger's service account), or the
user.

Locally this is an emulation for catching least-privilege mistakes before they reach the cloud,
not an operating-system security boundary: any local process can read the state directory.
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mlplane.errors import ConfigError, PermissionDenied
from mlplane.iam.authorizer import Authorizer
from mlplane.iam.compiled import policy_for
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

METADATA_EMAIL = "/computeMetadata/v1/instance/service-accounts/default/email"


def metadata_principal(timeout: float = 2.0) -> Principal | None:
    """The instance's service account, when running under a metadata endpoint (GCE or local)."""
    host = os.environ.get("GCE_METADATA_HOST")
    if not host:
        return None
    req = urllib.request.Request(
        f"http://{host}{METADATA_EMAIL}", headers={"Metadata-Flavor": "Google"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # loopback locally
        email = resp.read().decode().strip()
    return Principal("serviceAccount", email)


def find_project_file() -> Path:
    from mlplane.project_path import find_project_file as find

    return Path(find())


@dataclass
class Caller:
    """The acting principal and the authorizer that decides for it."""

    principal: Principal
    authz: Authorizer
    project_file: Path

    @classmethod
    def resolve(
        cls, project_file: Path | str | None = None, principal: Principal | str | None = None
    ) -> Caller:
        path = Path(project_file) if project_file else find_project_file()
        authz = Authorizer(policy_for(path))
        if isinstance(principal, str):
            principal = authz.principal(principal)
        if principal is None:
            principal = metadata_principal()
        if principal is None:
            text = os.environ.get("MLPLANE_PRINCIPAL") or os.environ.get("MLPLANE_USER")
            if text:
                principal = authz.principal(text)
        if principal is None:
            users = [
                m
                for ms in authz.policy.process_members.values()
                for m in ms
                if m.startswith("user:")
            ]
            if not users:
                raise ConfigError(
                    str(path), "team.principals", "no user to act as: set $MLPLANE_USER"
                )
            principal = Principal.parse(users[0])
        return cls(principal, authz, path)

    @property
    def project(self) -> str:
        return self.authz.policy.project

    def require(self, permissions: str | tuple[str, ...], resource: ResourceRef) -> None:
        """Raise PermissionDenied (naming what is missing and the sanctioned path) unless the
        caller holds `permissions` on `resource`."""
        decision = self.authz.authorize(self.principal, permissions, resource)
        if not decision.allowed:
            raise PermissionDenied(decision.explain(), decision)


def dumps(data: object) -> str:
    return json.dumps(data, sort_keys=True)
