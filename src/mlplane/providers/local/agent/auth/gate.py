"""Who is calling the agent, and may they do it: authentication and IAM authorization.

A caller is whoever its bearer token belongs to (see `tokens.TokenAuthority`): a signed-in
user, an instance's or a build's service account, or an account a caller was allowed to
impersonate. No header, flag or variable names an identity.

Every call is then authorized with the IAM layer, per API method, as GCP would: the permissions
the method needs on that resource (the engine checks the same before calling; this is defense
in depth). Waiting on an operation is a call of its own (`compute.*Operations.get`): a training
VM may delete itself without being able to watch the operation, exactly as on GCP.

An emulation for catching least-privilege mistakes, not an OS security boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlplane.errors import PermissionDenied
from mlplane.iam.authorizer import Authorizer
from mlplane.iam.compiled import policy_for
from mlplane.model.compute import SPEC_TYPES, PermissionCheck, ResourceKey, ResourceSpec, Verb
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

from .tokens import Token, TokenAuthority

_POLL_SUFFIXES = ("Operations.get",)


class Unauthenticated(Exception):
    """No valid credentials: answered with 401."""


@dataclass(frozen=True)
class Caller:
    principal: Principal
    token: Token | None = None

    @property
    def instance(self) -> str | None:
        """The instance whose metadata server issued the caller's token, if any."""
        t = self.token
        return t.detail if t is not None and t.origin == "instance" else None

    @property
    def build(self) -> str | None:
        t = self.token
        return t.detail if t is not None and t.origin == "build" else None

    def __str__(self) -> str:
        via = f" ({self.token.describe()})" if self.token and self.token.origin != "signin" else ""
        return f"{self.principal}{via}"


def google_name(ref: ResourceRef) -> str:
    """A resource as Google's error messages name it (projects/P/global/urlMaps/NAME, ...)."""
    project = f"projects/{ref.project}"
    if ref.kind == "project":
        return project
    if ref.kind == "serviceAccount":
        return f"{project}/serviceAccounts/{ref.name}"
    if ref.kind == "endpointsService":
        return f"services/{ref.name}"
    spec = SPEC_TYPES.get(ref.kind)
    if spec is None:
        return f"{project}/{ref.kind}/{ref.name}"
    scope = "zones/-" if "zone" in spec.model_fields else "global"
    return f"{project}/{scope}/{spec.COLLECTION}/{ref.name}"


def is_poll_permission(permission: str) -> bool:
    return permission.endswith(_POLL_SUFFIXES)


def bearer(headers: Mapping[str, str]) -> str:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated(
            "Request is missing required authentication credential. Expected OAuth 2 access "
            "token (sign in with `mlplane auth login`)"
        )
    return value.strip()


class Gate:
    def __init__(self, project_file: Path, tokens: TokenAuthority) -> None:
        self.project_file = project_file
        self.tokens = tokens
        self._stamp: tuple[float, int] | None = None
        self._authz: Authorizer | None = None

    @property
    def authorizer(self) -> Authorizer:
        """The project's authorizer, rebuilt when the project file changes."""
        try:
            st = self.project_file.stat()
            stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except OSError:  # moved or being rewritten: keep deciding with what we have
            stamp = self._stamp
        if self._authz is None or stamp != self._stamp:
            self._authz = Authorizer(policy_for(self.project_file))
            self._stamp = stamp
        return self._authz

    @property
    def project(self) -> str:
        return self.authorizer.policy.project

    def caller(self, headers: Mapping[str, str]) -> Caller:
        token = self.tokens.lookup(bearer(headers))
        if token is None:
            raise Unauthenticated(
                "Request had invalid authentication credentials: the access token is unknown "
                "or expired (`mlplane auth login`, or `mlplane auth print-access-token` again)"
            )
        return Caller(token.principal, token)

    def checks(
        self, verb: Verb, key: ResourceKey, spec: ResourceSpec | None
    ) -> tuple[PermissionCheck, ...]:
        project = self.project
        if spec is not None:
            return spec.permission_checks(verb, project)
        perms = SPEC_TYPES[key.kind].PERMISSIONS.get(verb, ())
        return (PermissionCheck(perms, ResourceRef(key.kind, key.name, project)),)

    def authorize(
        self, caller: Caller, verb: Verb, key: ResourceKey, spec: ResourceSpec | None = None
    ) -> None:
        """Raise PermissionDenied (with the decision) unless `caller` may `verb` on `key`."""
        for check in self.checks(verb, key, spec):
            perms = tuple(p for p in check.permissions if not is_poll_permission(p))
            self.require(caller, perms, check.resource)

    def require(self, caller: Caller, perms: tuple[str, ...], resource: ResourceRef) -> None:
        """Raise PermissionDenied naming the first missing permission (in Google's words) and
        the model's reason and sanctioned path."""
        if not perms:
            return
        decision = self.authorizer.authorize(caller.principal, perms, resource)
        if not decision.allowed:
            missing = decision.missing[0] if decision.missing else perms[0]
            raise PermissionDenied(
                f"Required '{missing}' permission for '{google_name(resource)}': "
                f"{decision.explain()}",
                decision,
            )

    def ref(self, key: ResourceKey) -> ResourceRef:
        return ResourceRef(key.kind, key.name, self.project)

    def require_project(self, caller: Caller, *perms: str) -> None:
        self.require(caller, perms, ResourceRef.project_root(self.project))
