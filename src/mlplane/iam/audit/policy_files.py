"""Read the JSON that gcloud prints for IAM policies and custom roles.

`--policy`: `gcloud projects get-iam-policy P --format json`; resource policies have the same
shape (`gcloud storage buckets get-iam-policy`, `gcloud iam service-accounts get-iam-policy`, ...).
`--roles`: a list of roles or one role, as `gcloud iam roles describe ID --project P --format json`
prints it. `gcloud iam roles list --project P --format json` omits `includedPermissions`; such
roles are accepted and reported as unexpandable.

Every error is a ConfigError naming the file and the field path (`bindings[3].members[0]`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, RootModel

from mlplane.errors import ConfigError
from mlplane.iam.audit.members import canonical_member
from mlplane.iam.audit.policy import (
    Policy,
    PolicyBinding,
    PolicyCondition,
    PolicySet,
    RoleDefinition,
)
from mlplane.iam.loading import parse_model
from mlplane.iam.synthesis import Scope
from mlplane.model.refs import SCOPE_KINDS

_ROLE = re.compile(r"roles/[A-Za-z0-9_.]+|(projects|organizations)/[^/\s]+/roles/[A-Za-z0-9_.]+")
_CUSTOM_ROLE = re.compile(r"(projects|organizations)/[^/\s]+/roles/[A-Za-z0-9_.]+")


def _role(value: str) -> str:
    if not _ROLE.fullmatch(value):
        raise ValueError(
            f"'{value}' is not an IAM role name (roles/NAME, projects/P/roles/ID or "
            "organizations/O/roles/ID)"
        )
    return value


def _custom_role(value: str) -> str:
    if not _CUSTOM_ROLE.fullmatch(value):
        raise ValueError(f"'{value}' is not a custom role name (projects/P/roles/ID)")
    return value


Member = Annotated[str, AfterValidator(canonical_member)]
RoleName = Annotated[str, AfterValidator(_role)]


class _Gcloud(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GcloudCondition(_Gcloud):
    expression: str
    title: str
    description: str = ""
    location: str = ""


class GcloudBinding(_Gcloud):
    role: RoleName
    members: list[Member]
    condition: GcloudCondition | None = None


class GcloudPolicy(_Gcloud):
    bindings: list[GcloudBinding] = []
    etag: str = ""
    version: int = 1
    auditConfigs: list[dict[str, Any]] = []
    kind: str = ""  # Cloud Storage policies add kind and resourceId
    resourceId: str = ""


class GcloudRole(_Gcloud):
    name: Annotated[str, AfterValidator(_custom_role)]
    title: str = ""
    description: str = ""
    stage: str = "GA"
    etag: str = ""
    includedPermissions: list[str] | None = None
    deleted: bool = False


class GcloudRoles(RootModel[list[GcloudRole]]):
    pass


def read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "", "no such file") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = "" if text.lstrip()[:1] in ("{", "[") else "; write it with --format json"
        raise ConfigError(
            str(path), f"line {exc.lineno}", f"not valid JSON: {exc.msg} (column {exc.colno}){hint}"
        ) from None
    except ValueError:  # json converting an integer of more than 4300 digits
        raise ConfigError(str(path), "", "not valid JSON: a number is too long") from None
    except RecursionError:
        raise ConfigError(str(path), "", "not valid JSON: nested too deeply") from None


def policy_from_data(data: Any, scope: Scope, source: str) -> Policy:
    parsed = parse_model(GcloudPolicy, data, source)
    bucket = parsed.resourceId.rpartition("/")[2]
    if scope.kind == "bucket" and parsed.resourceId and bucket != scope.name:
        message = f"this is the policy of {parsed.resourceId}, not of bucket {scope.name}"
        raise ConfigError(source, "resourceId", message)
    bindings = tuple(
        PolicyBinding(
            role=b.role,
            members=tuple(b.members),
            condition=(
                PolicyCondition(b.condition.title, b.condition.expression, b.condition.description)
                if b.condition
                else None
            ),
            where=f"{source}: bindings[{i}]",
        )
        for i, b in enumerate(parsed.bindings)
    )
    return Policy(scope, bindings, source, parsed.etag, parsed.version)


def read_policy(path: Path, scope: Scope) -> Policy:
    return policy_from_data(read_json(path), scope, str(path))


def roles_from_data(data: Any, source: str) -> tuple[RoleDefinition, ...]:
    roles = (
        [parse_model(GcloudRole, data, source)]
        if isinstance(data, dict)
        else parse_model(GcloudRoles, data, source).root
    )
    return tuple(
        RoleDefinition(
            name=r.name,
            title=r.title,
            stage=r.stage,
            permissions=(
                frozenset(r.includedPermissions) if r.includedPermissions is not None else None
            ),
            deleted=r.deleted,
        )
        for r in roles
    )


def read_roles(paths: Sequence[Path]) -> tuple[RoleDefinition, ...]:
    out: dict[str, RoleDefinition] = {}
    for path in paths:
        for role in roles_from_data(read_json(path), str(path)):
            out[role.name] = role
    return tuple(out.values())


def parse_scope_arg(text: str, source: str = "--resource-policy") -> tuple[Scope, Path]:
    """`KIND:NAME=FILE` -> (Scope, Path). Repositories may be written `LOCATION/NAME`."""
    spec, eq, file = text.partition("=")
    kind, colon, name = spec.partition(":")
    kinds = [k for k in SCOPE_KINDS if k != "project"]
    if not eq or not colon or not name or not file:
        raise ConfigError(source, "", f"'{text}': write KIND:NAME=FILE (KIND: {', '.join(kinds)})")
    if kind not in kinds:
        raise ConfigError(
            source, "", f"'{text}': unknown kind '{kind}' (one of {', '.join(kinds)})"
        )
    location = ""
    if kind == "repository" and "/" in name:
        location, _, name = name.rpartition("/")
    if kind == "serviceAccount":
        name = name.lower()
    return Scope(kind, name, location), Path(file)


def read_policy_set(
    project: str,
    policy: Path,
    roles: Sequence[Path] = (),
    resources: Sequence[tuple[Scope, Path]] = (),
) -> PolicySet:
    seen: set[tuple[str, str]] = set()
    resource_policies = []
    for scope, path in resources:
        if (scope.kind, scope.name) in seen:
            raise ConfigError("--resource-policy", "", f"{scope} is given twice")
        seen.add((scope.kind, scope.name))
        resource_policies.append(read_policy(path, scope))
    return PolicySet(
        project=read_policy(policy, Scope("project", project)),
        resources=tuple(resource_policies),
        roles=read_roles(roles),
        roles_given=bool(roles),
    )


# ------------------------------------------------------------------ the other direction


def policy_to_data(policy: Policy) -> dict[str, Any]:
    """A Policy in gcloud's JSON shape (what `get-iam-policy --format json` prints)."""
    bindings: list[dict[str, Any]] = []
    for b in policy.bindings:
        entry: dict[str, Any] = {"role": b.role, "members": list(b.members)}
        if b.condition is not None:
            entry["condition"] = {"expression": b.condition.expression, "title": b.condition.title}
            if b.condition.description:
                entry["condition"]["description"] = b.condition.description
        bindings.append(entry)
    conditional = any(b.condition for b in policy.bindings)
    return {"bindings": bindings, "etag": policy.etag, "version": 3 if conditional else 1}


def roles_to_data(roles: Sequence[RoleDefinition]) -> list[dict[str, Any]]:
    """Custom roles in the shape `gcloud iam roles describe --format json` prints."""
    out: list[dict[str, Any]] = []
    for r in roles:
        entry: dict[str, Any] = {"name": r.name, "title": r.title, "stage": r.stage}
        if r.permissions is not None:
            entry["includedPermissions"] = sorted(r.permissions)
        if r.deleted:
            entry["deleted"] = True
        out.append(entry)
    return out
