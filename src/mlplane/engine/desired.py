"""Desired state: named stacks of resource specs, plus incremental changes to shared resources.

A *stack* owns its resources: planning a stack deletes whatever the store records for it that it
no longer lists. Shared passive resources (the URL map, the OpenAPI config) are owned by the
bootstrap stack; other stacks edit them only through `Change` intents (add a route, remove
paths), which are re-applied to the live object, so concurrent stacks never undo each other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mlplane.model.compute import Change, ResourceKey, ResourceSpec

_STACK_RE = re.compile(r"[a-z0-9]([-a-z0-9_./]*[a-z0-9])?")


def check_stack_name(name: str) -> str:
    if len(name) > 200 or not _STACK_RE.fullmatch(name) or ".." in name:
        raise ValueError(
            f"stack name '{name}' must be lowercase letters, digits and '-_./' (e.g. "
            "'serving/sentiment/r12'), at most 200 characters"
        )
    return name


@dataclass(frozen=True)
class StackSpec:
    """What one stack wants to exist, and the changes it makes to resources it does not own."""

    name: str
    resources: tuple[ResourceSpec, ...] = ()
    changes: tuple[Change, ...] = ()

    def __post_init__(self) -> None:
        check_stack_name(self.name)


@dataclass(frozen=True)
class DesiredState:
    stacks: tuple[StackSpec, ...]

    @classmethod
    def of(cls, *stacks: StackSpec) -> DesiredState:
        return cls(tuple(stacks))

    @classmethod
    def destroy(cls, names: Iterable[str], changes: tuple[Change, ...] = ()) -> DesiredState:
        """Empty stacks: planning them deletes everything they own."""
        stacks = [StackSpec(name) for name in names]
        if changes and stacks:
            stacks[0] = StackSpec(stacks[0].name, (), changes)
        return cls(tuple(stacks))

    @property
    def stack_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stacks)

    def keys(self) -> tuple[ResourceKey, ...]:
        return tuple(r.key for s in self.stacks for r in s.resources)

    def change_targets(self) -> tuple[ResourceKey, ...]:
        return tuple(dict.fromkeys(c.target for s in self.stacks for c in s.changes))
