"""Who is calling the agent, and may they do it: authentication and IAM authorization.

Two kinds of callers:
- the CLI (and the engine through the local provider): the agent's bearer token (from the
  0600 token file) plus the acting principal it asserts in `X-Mlplane-Principal`. Without a
  principal the token holder is the local operator: it may read (what `/v1/status` shows
  anyway) but not change anything;
- a workload: an access token from its instance's metadata endpoint; it acts as that
  instance's service account and cannot assert another principal.

Every call is then authorized with the IAM layer, per API method, as GCP would: the
permissions the kind declares for the verb on that resource (the engine checks the same before
calling; this is defense in depth). Waiting on an operation is a call of its own, so the
operation-polling permissions (`compute.*Operations.get`) are checked when an operation is
read, not when the mutation is made: a training VM may delete itself without being able to
watch the operation, exactly as on GCP.

An emulation for catching least-privilege mistakes, not an OS security boundary.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlplane.errors import PermissionDenied
from mlplane.iam.authorizer import Authorizer
from mlplane.iam.compiled import policy_for
from mlplane.model.compute import SPEC_TYPES, PermissionCheck, ResourceKey, ResourceSpec, Verb
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

from .http_server import BadRequest
from .metadata import TokenRegistry

PRINCIPAL_HEADER = "x-mlplane-principal"
_POLL_SUFFIXES = ("Operations.get",)


class Unauthenticated(Exception):
    """No valid credentials: answered with 401."""


@dataclass(frozen=True)
class Caller:
    principal: Principal | None  # None: the local operator (agent token, no principal): reads
    instance: str | None = None  # set when a workload calls with its metadata token

    def __str__(self) -> str:
        who = str(self.principal) if self.principal else "the local operator"
        return f"{who} (instance {self.instance})" if self.instance else who


def is_poll_permission(permission: str) -> bool:
    return permission.endswith(_POLL_SUFFIXES)


class Gate:
    def __init__(self, project_file: Path, agent_token: str, tokens: TokenRegistry) -> None:
        self.project_file = project_file
        self._token = agent_token
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

    @staticmethod
    def _bearer(headers: Mapping[str, str]) -> str:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise Unauthenticated("missing 'Authorization: Bearer TOKEN'")
        return value

    def _is_agent_token(self, value: str) -> bool:
        return hmac.compare_digest(value.encode(), self._token.encode())

    def require_operator(self, headers: Mapping[str, str]) -> None:
        """The local operator's views (status) need the agent token, no principal."""
        value = self._bearer(headers)
        if not self._is_agent_token(value):
            if self.tokens.lookup(value) is not None:
                raise PermissionDenied("the agent's status view is for the CLI, not workloads")
            raise Unauthenticated("invalid or expired token")

    def caller(self, headers: Mapping[str, str]) -> Caller:
        value = self._bearer(headers)
        asserted = headers.get(PRINCIPAL_HEADER)
        if self._is_agent_token(value):
            if not asserted:
                return Caller(None)
            try:
                return Caller(Principal.parse(asserted))
            except ValueError as exc:
                raise BadRequest(f"{PRINCIPAL_HEADER}: {exc}") from None
        tok = self.tokens.lookup(value)
        if tok is None:
            raise Unauthenticated("invalid or expired token")
        if asserted:
            raise BadRequest(
                f"an instance token acts as its service account; {PRINCIPAL_HEADER} is not allowed"
            )
        return Caller(Principal("serviceAccount", tok.service_account), tok.instance)

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
        if caller.principal is None:
            if verb is Verb.GET:
                return
            raise BadRequest(
                f"{verb} {key}: a change needs the acting principal ({PRINCIPAL_HEADER})"
            )
        for check in self.checks(verb, key, spec):
            perms = tuple(p for p in check.permissions if not is_poll_permission(p))
            self._require(caller, perms, check.resource)

    def authorize_poll(self, caller: Caller, verb: Verb, key: ResourceKey) -> None:
        """Reading an operation: its polling permissions, else the kind's read permission."""
        if caller.principal is None:
            return
        declared = SPEC_TYPES[key.kind].PERMISSIONS.get(verb, ())
        perms = tuple(p for p in declared if is_poll_permission(p))
        if perms:
            self._require(caller, perms, ResourceRef.project_root(self.project))
        else:
            self.authorize(caller, Verb.GET, key)

    def _require(self, caller: Caller, perms: tuple[str, ...], resource: ResourceRef) -> None:
        if not perms or caller.principal is None:
            return
        decision = self.authorizer.authorize(caller.principal, perms, resource)
        if not decision.allowed:
            raise PermissionDenied(decision.explain(), decision)
