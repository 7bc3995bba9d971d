"""Authorization hook: every step is checked for the acting principal before any provider call.

The engine depends only on this Protocol; the IAM layer's `Authorizer` satisfies it (locally it
is the authority; on GCP it pre-checks with the same model, then Google's IAM enforces).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from mlplane.errors import PermissionDenied
from mlplane.iam.decision import Decision
from mlplane.model.compute import PermissionCheck, ResourceSpec, Verb
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

from .steps import Op, Step


class Authorizer(Protocol):
    def authorize(
        self,
        principal: Principal,
        what: str | Sequence[str],
        resource: ResourceRef | None = None,
    ) -> Decision: ...


_VERBS = {Op.CREATE: Verb.CREATE, Op.UPDATE: Verb.UPDATE, Op.DELETE: Verb.DELETE}


def verb_checks(spec: ResourceSpec | None, op: Op, project: str) -> tuple[PermissionCheck, ...]:
    """What performing `op` on `spec` needs (RECORD/FORGET only read the resource)."""
    if spec is None or op is Op.NONE:
        return ()
    return spec.permission_checks(_VERBS.get(op, Verb.GET), project)


def step_checks(step: Step, project: str) -> tuple[PermissionCheck, ...]:
    spec = step.previous if step.op in (Op.DELETE, Op.FORGET) else step.spec
    return verb_checks(spec, step.op, project)


def require(
    authorizer: Authorizer, principal: Principal, checks: Iterable[PermissionCheck]
) -> None:
    """Raise PermissionDenied (with the IAM decision) on the first check that is denied."""
    for check in checks:
        decision = authorizer.authorize(principal, check.permissions, check.resource)
        if not decision.allowed:
            raise PermissionDenied(decision.explain(), decision)
