"""What a plan is made of: steps (create / update / replace / delete / noop) and their order."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mlplane.errors import PermanentError
from mlplane.model.compute import Change, ResourceKey, ResourceSpec


class PlanError(PermanentError):
    """The desired state cannot be reached by a lifecycle plan; the message names the resource."""


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "noop"


class Op(StrEnum):
    """What executing a step does: a provider mutation, or only a state-store write."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RECORD = "record"  # exists at the provider exactly as desired but unrecorded: adopt it
    FORGET = "forget"  # recorded but gone at the provider: drop the record
    NONE = "none"


class ReplaceStrategy(StrEnum):
    DELETE_BEFORE_CREATE = "delete-before-create"


@dataclass(frozen=True)
class Step:
    id: str
    action: Action
    op: Op
    key: ResourceKey
    stack: str
    spec: ResourceSpec | None = None  # the resource after the step (None: gone)
    previous: ResourceSpec | None = None  # the resource before the step
    # The update *intent*, re-applied to the live object after a fingerprint conflict: the
    # declared spec (merged into live, see ResourceSpec.merge_live) then the changes.
    declared: ResourceSpec | None = None
    changes: tuple[Change, ...] = ()
    depends_on: tuple[str, ...] = ()
    diff: tuple[str, ...] = ()
    strategy: ReplaceStrategy | None = None
    base_version: int | None = None  # recorded row version the write-back is guarded with
    reason: str = ""
    origin: str = ""  # stack whose desired state produced the step, when not `stack`

    @property
    def scope(self) -> str:
        """The stack whose lock covers this step (and under which it is journaled)."""
        return self.origin or self.stack

    @property
    def executable(self) -> bool:
        return self.op is not Op.NONE

    def describe(self) -> str:
        sign = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "noop": "="}
        text = f"{sign[self.action]} {self.action} {self.key}"
        if self.action is Action.REPLACE:
            text += f" ({self.op} half, {self.strategy})"
        if self.diff:
            text += f" [{', '.join(self.diff)}]"
        if self.changes:
            text += f" ({len(self.changes)} change{'s' * (len(self.changes) > 1)})"
        if self.op in (Op.RECORD, Op.FORGET):
            text += f" ({self.op} only)"
        return text + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]  # topologically ordered
    stacks: tuple[str, ...]
    _by_id: dict[str, Step] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({s.id: s for s in self.steps})

    def step(self, step_id: str) -> Step:
        return self._by_id[step_id]

    @property
    def executable(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.executable)

    @property
    def empty(self) -> bool:
        return not self.executable

    def count(self, action: Action) -> int:
        return sum(1 for s in self.steps if s.action is action and s.op is not Op.NONE)

    def render(self, *, noops: bool = False) -> str:
        lines = [s.describe() for s in self.steps if noops or s.executable]
        return "\n".join(lines) if lines else "no changes"
