"""The operational model's types: processes, identities, actions, triggers, resource kinds.

These are the user-facing specs (the shipped `operational_model.toml` and a project's
`mlplane.toml` use the same shapes), so they forbid unknown fields and are immutable.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ID = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_ACTION_ID = re.compile(r"[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*")
_PERMISSION = re.compile(r"[a-zA-Z0-9]+(\.[a-zA-Z0-9]+){2,}")
_SCOPE = re.compile(
    r"project|(bucket|secret|repository|endpointsService|serviceAccount):[a-z0-9][a-z0-9-]*"
)

Who = Literal["user", "service_account", "both"]
Lifecycle = Literal["active", "passive"]
Mutability = Literal["immutable", "static", "dynamic"]


class Spec(BaseModel):
    """Base of every user-facing spec: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _check_id(value: str, what: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(
            f"{what} '{value}' must be lowercase letters, digits and single dashes, "
            "starting with a letter"
        )
    return value


class Process(Spec):
    id: str
    title: str
    service_account: str = Field(description="id of the identity that is this process's SA")
    description: str = ""

    _id = field_validator("id")(lambda v: _check_id(v, "process id"))


class Identity(Spec):
    """A service account. `process` identities are the document's one-SA-per-process; `runtime`
    identities run workloads with a subset of their process's service-account actions."""

    id: str
    kind: Literal["process", "runtime"]
    process: str
    title: str
    description: str = ""
    actions: tuple[str, ...] | None = Field(
        default=None,
        description="explicit action ids; default: every service-account action of the process",
    )
    exclude: tuple[str, ...] = ()

    _id = field_validator("id")(lambda v: _check_id(v, "identity id"))

    @model_validator(mode="after")
    def _actions_or_exclude(self) -> Identity:
        if self.actions is not None and self.exclude:
            raise ValueError("give either 'actions' or 'exclude', not both")
        return self


class Condition(Spec):
    """A narrowing of a grant to resources whose name starts with a prefix (an IAM condition).

    `managed_by` lists resource types that act on these resources for the holder (a managed
    instance group creates and deletes its VMs): the grant holds on those too, and on no other
    resource of the condition's own type."""

    id: str = Field(pattern=r"^[a-z][a-zA-Z0-9]{1,30}$")
    title: str
    resource_type: str = Field(pattern=r"^[a-z]+\.googleapis\.com/[A-Za-z]+$")
    name_prefix: str = Field(pattern=r"^[a-z][-a-z0-9]{0,40}$")
    managed_by: tuple[str, ...] = ()

    @field_validator("managed_by")
    @classmethod
    def _types(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for t in v:
            if not re.fullmatch(r"[a-z]+\.googleapis\.com/[A-Za-z]+", t):
                raise ValueError(f"'{t}' is not a resource type (service.googleapis.com/Kind)")
        return v

    @property
    def expression(self) -> str:
        if self.resource_type == "compute.googleapis.com/Instance":
            own = (
                f'resource.type == "{self.resource_type}" && '
                f'resource.name.extract("/instances/{{name}}").startsWith("{self.name_prefix}")'
            )
        else:
            own = (
                f'resource.type == "{self.resource_type}" && '
                f'resource.name.startsWith("{self.name_prefix}")'
            )
        if not self.managed_by:
            return own
        return " || ".join([f"({own})", *(f'resource.type == "{t}"' for t in self.managed_by)])


class Grant(Spec):
    scope: str
    permissions: tuple[str, ...] = Field(min_length=1)
    condition: Condition | None = None

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str) -> str:
        if not _SCOPE.fullmatch(v):
            raise ValueError(
                f"scope '{v}' is not one of: project, bucket:REF, secret:REF, repository:REF, "
                "endpointsService:REF, serviceAccount:IDENTITY"
            )
        return v

    @field_validator("permissions")
    @classmethod
    def _perms(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            if not _PERMISSION.fullmatch(p):
                raise ValueError(f"'{p}' is not a permission name (service.resource.verb)")
        if len(set(v)) != len(v):
            raise ValueError("permissions are listed twice")
        return v

    @property
    def scope_kind(self) -> str:
        return self.scope.partition(":")[0]

    @property
    def scope_ref(self) -> str:
        return self.scope.partition(":")[2]


class Action(Spec):
    id: str
    process: str
    who: Who
    requirement: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    grants: tuple[Grant, ...] = Field(min_length=1)
    via_triggers: tuple[str, ...] = ()

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ACTION_ID.fullmatch(v):
            raise ValueError(f"action id '{v}' must look like 'process.verb-noun'")
        return v

    @property
    def user_side(self) -> bool:
        return self.who in ("user", "both")

    @property
    def service_side(self) -> bool:
        return self.who in ("service_account", "both")

    @property
    def permissions(self) -> frozenset[str]:
        return frozenset(p for g in self.grants for p in g.permissions)


class Trigger(Spec):
    name: str
    process: str
    runs_as: str
    event: Literal["manual", "push"]
    branch: str | None = None
    description: str = ""
    usage: str = ""

    _name = field_validator("name")(lambda v: _check_id(v, "trigger name"))


class ResourceKind(Spec):
    kind: str = Field(pattern=r"^[A-Z][A-Za-z]+$")
    lifecycle: Lifecycle
    mutability: Mutability
    description: str = ""


class Builds(Spec):
    """What every identity that runs a CI trigger needs to run the build at all."""

    reason: str = Field(min_length=1)
    grants: tuple[Grant, ...] = ()


_HOLDER = re.compile(r"(users:)?[a-z][a-z0-9]*(-[a-z0-9]+)*")
_STATE_ACTION = re.compile(r"[a-z][a-z0-9-]*\.(read|write)-state(-as-[a-z0-9-]+)?")


def is_state_action(action_id: str) -> bool:
    """Whether `action_id` names a derived team-state action (`PROCESS.write-state`, ...):
    its grants hold on the state's bucket only, which the audit takes into account."""
    return _STATE_ACTION.fullmatch(action_id) is not None


class StateAccess(Spec):
    """Who reads and who writes the team state (`provider = "gcp"`: an object and its lock in
    the bucket [state] names, docs/decisions/1500). A holder is `users:PROCESS` (the users of
    a process) or an identity id. Each gets the derived action `PROCESS.write-state` or
    `PROCESS.read-state` (`-as-IDENTITY` for an identity that is not its process's own
    account) on exactly that bucket. `bucket` is the project's [state] bucket ref, set when
    the project is merged."""

    reason: str = Field(min_length=1)
    read: tuple[str, ...] = Field(min_length=1)
    write: tuple[str, ...] = Field(min_length=1)
    readers: tuple[str, ...] = ()
    writers: tuple[str, ...] = ()
    bucket: str = "state"

    @field_validator("readers", "writers")
    @classmethod
    def _holders(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for h in v:
            if not _HOLDER.fullmatch(h):
                raise ValueError(f"'{h}' is not 'users:PROCESS' or an identity id")
        return v

    @model_validator(mode="after")
    def _once(self) -> StateAccess:
        both = sorted(set(self.readers) & set(self.writers))
        if both:
            raise ValueError(f"{', '.join(both)}: a holder is a reader or a writer, not both")
        return self


class OperationalModel(Spec):
    """The whole model: the shipped one, or the shipped one merged with a project's additions."""

    version: int = 1
    processes: tuple[Process, ...]
    identities: tuple[Identity, ...]
    actions: tuple[Action, ...]
    triggers: tuple[Trigger, ...]
    resource_kinds: tuple[ResourceKind, ...] = ()
    builds: Builds | None = None
    state: StateAccess | None = None

    def action(self, action_id: str) -> Action | None:
        """An action of the model, or a derived one (`PROCESS.run-builds`, `PROCESS.write-state`,
        ...)."""
        found = next((a for a in self.actions if a.id == action_id), None)
        if found is None and (".run-builds" in action_id or "-state" in action_id):
            found = next((a for a in self.derived_actions() if a.id == action_id), None)
        return found

    def identity(self, identity_id: str) -> Identity | None:
        return next((i for i in self.identities if i.id == identity_id), None)

    def trigger(self, name: str) -> Trigger | None:
        return next((t for t in self.triggers if t.name == name), None)

    def process(self, process_id: str) -> Process | None:
        return next((p for p in self.processes if p.id == process_id), None)

    def identity_actions(self, identity: Identity) -> tuple[Action, ...]:
        """The actions an identity performs, per its `actions` / `exclude` selection."""
        if identity.actions is not None:
            wanted = set(identity.actions)
            return tuple(a for a in self.actions if a.id in wanted)
        return tuple(
            a
            for a in self.actions
            if a.process == identity.process and a.service_side and a.id not in identity.exclude
        )

    def build_actions(self, identity: Identity) -> tuple[Action, ...]:
        """The derived action `PROCESS.run-builds` of an identity that runs CI triggers: the
        `builds` grants, reserved to those triggers (none when it runs no trigger)."""
        runs = tuple(t.name for t in self.triggers if t.runs_as == identity.id)
        if not runs or self.builds is None or not self.builds.grants:
            return ()
        process = self.process(identity.process)
        own = process is not None and process.service_account == identity.id
        suffix = "" if own else f"-as-{identity.id}"
        return (
            Action(
                id=f"{identity.process}.run-builds{suffix}",
                process=identity.process,
                who="service_account",
                requirement=f"Run the builds of the CI triggers {', '.join(runs)}.",
                reason=self.builds.reason,
                grants=self.builds.grants,
                via_triggers=runs,
            ),
        )

    def all_build_actions(self) -> tuple[Action, ...]:
        return tuple(a for i in self.identities for a in self.build_actions(i))

    def state_actions(self) -> tuple[tuple[str, Action], ...]:
        """(holder, derived action) for each reader and writer of the team state: holder is
        `users:PROCESS` or `identity:ID`. Holders whose process or identity the model lacks
        are skipped here (validation reports them)."""
        if self.state is None:
            return ()
        out = []
        for level, holders in (("read", self.state.readers), ("write", self.state.writers)):
            for holder in holders:
                found = self._state_holder(holder)
                if found is None:
                    continue
                key, process, who, suffix = found
                out.append((key, self._state_action(level, process, who, suffix)))
        return tuple(out)

    def _state_holder(self, holder: str) -> tuple[str, str, Who, str] | None:
        """(holder key, process id, who, action id suffix) of a reader or writer."""
        _, users, process_id = holder.rpartition("users:")
        if users:
            return (holder, process_id, "user", "") if self.process(process_id) else None
        ident = self.identity(holder)
        process = self.process(ident.process) if ident else None
        if process is None:
            return None
        suffix = "" if process.service_account == holder else f"-as-{holder}"
        return f"identity:{holder}", process.id, "service_account", suffix

    def _state_action(self, level: str, process: str, who: Who, suffix: str) -> Action:
        assert self.state is not None
        write = level == "write"
        return Action(
            id=f"{process}.{level}-state{suffix}",
            process=process,
            who=who,
            requirement=(
                "Record what mlplane applies in the team state, under its lock (provider gcp)."
                if write
                else "Read the team state: what mlplane applied (provider gcp)."
            ),
            reason=self.state.reason,
            grants=(
                Grant(
                    scope=f"bucket:{self.state.bucket}",
                    permissions=self.state.write if write else self.state.read,
                ),
            ),
        )

    def derived_actions(self) -> tuple[Action, ...]:
        """Actions the model derives rather than lists: each identity's `run-builds`, and the
        team state's readers and writers."""
        return (*self.all_build_actions(), *(a for _, a in self.state_actions()))

    def derived_actions_of(self, holder: str) -> tuple[Action, ...]:
        """The derived team-state actions of `users:PROCESS` or `identity:ID`."""
        return tuple(a for h, a in self.state_actions() if h == holder)
