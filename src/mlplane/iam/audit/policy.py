"""The IAM policies an audit reads, in memory: what `gcloud ... get-iam-policy` and
`gcloud iam roles describe` print, and what our Terraform export implies."""

from __future__ import annotations

from dataclasses import dataclass

from mlplane.iam.synthesis import Scope


@dataclass(frozen=True)
class PolicyCondition:
    title: str
    expression: str
    description: str = ""

    @property
    def key(self) -> str:
        """The expression with whitespace normalized: two grants have the same condition when
        their expressions are equal (titles are labels)."""
        return " ".join(self.expression.split())


@dataclass(frozen=True)
class PolicyBinding:
    role: str
    members: tuple[str, ...]  # canonical IAM member strings
    condition: PolicyCondition | None = None
    where: str = ""  # where it came from, for the report: "policy.json: bindings[3]"


@dataclass(frozen=True)
class Policy:
    """One IAM policy: of the project, or of one resource (a bucket, a service account, ...)."""

    scope: Scope
    bindings: tuple[PolicyBinding, ...]
    source: str = ""
    etag: str = ""
    version: int = 1


@dataclass(frozen=True)
class RoleDefinition:
    """A custom role. `permissions` is None when the source listed the role without its
    permissions (`gcloud iam roles list` does that): the audit reports it as unexpandable."""

    name: str  # projects/P/roles/ID or organizations/O/roles/ID
    title: str = ""
    stage: str = "GA"
    permissions: frozenset[str] | None = None
    deleted: bool = False

    @property
    def active(self) -> bool:
        """Deleted and DISABLED custom roles grant nothing."""
        return not self.deleted and self.stage != "DISABLED"


@dataclass(frozen=True)
class PolicySet:
    """Everything an audit compares with the model: the project policy, resource policies and
    the custom role definitions (`roles_given` says whether any role source was supplied)."""

    project: Policy
    resources: tuple[Policy, ...] = ()
    roles: tuple[RoleDefinition, ...] = ()
    roles_given: bool = False

    @property
    def policies(self) -> tuple[Policy, ...]:
        return (self.project, *self.resources)
