"""Rehearsing an apply (`--dry-run`): each step's provider calls, made once, through providers
whose client records mutations instead of sending them.

`Engine.rehearse` plans and authorizes exactly as `Engine.apply` does, then calls
`rehearse_step` for each executable step in plan order (apply runs independent steps in
parallel; the plan's order is one it may take). Nothing is locked, journaled or recorded in the
state store, and no operation is waited for. An update reads the live object (a GET the dry-run
client sends) and computes the body apply would send; a resource an earlier rehearsal created or
changed (`after=`) is taken as that rehearsal left it, with its fingerprint unknown.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mlplane.errors import PermanentError
from mlplane.model.compute import Change, ResourceKey, ResourceSpec
from mlplane.providers.base import Observed
from mlplane.providers.errors import NotFound
from mlplane.providers.registry import ProviderSet

from .runner import update_target
from .state import RecordedResource
from .steps import Op, Plan, Step

# What an update would carry as the fingerprint of a resource an earlier call changes first.
LATER_FINGERPRINT = "<fingerprint read after the calls above>"
NAMESPACE = uuid.UUID("6f1d8a4e-3c0b-5e7a-9d2f-6a1b0c9e8d7f")

Note = Callable[[str], None]


class NotRecording(PermanentError):
    """A rehearsal was asked of providers that would really send their calls."""


@dataclass(frozen=True)
class Rehearsal:
    """A rehearsed plan, the open intents apply would roll forward first, and what the
    rehearsed steps would leave: key -> (owning stack, spec, or None when deleted)."""

    plan: Plan
    recovered: tuple[str, ...] = ()
    state: Mapping[ResourceKey, tuple[str, ResourceSpec | None]] = field(default_factory=dict)
    depth: int = 1  # 1 + the depth of the rehearsal it follows

    @property
    def next_depth(self) -> int:
        return self.depth + 1


def request_id(step_id: str, depth: int = 1) -> str:
    """A request id for a rehearsed step, the same in every dry run of the same plan (apply
    draws a fresh one per run)."""
    return str(uuid.uuid5(NAMESPACE, f"{depth}/{step_id}"))


def require_recording(providers: ProviderSet) -> None:
    if not providers.records_only:
        raise NotRecording(
            "a rehearsal needs providers over a dry-run client (one that records mutations "
            "instead of sending them)"
        )


def overlaid(
    recorded: Mapping[ResourceKey, RecordedResource],
    state: Mapping[ResourceKey, tuple[str, ResourceSpec | None]],
) -> dict[ResourceKey, RecordedResource]:
    """The state store as it would read after the rehearsed steps of `state`."""
    out = dict(recorded)
    for key, (stack, spec) in state.items():
        if spec is None:
            out.pop(key, None)
        else:
            version = out[key].version if key in out else 0
            out[key] = RecordedResource(key, stack, spec, version)
    return out


def rehearse_step(
    providers: ProviderSet,
    step: Step,
    state: Mapping[ResourceKey, tuple[str, ResourceSpec | None]],
    rid: str,
) -> ResourceSpec | None:
    """Make `step`'s provider calls (recorded, not sent); return the resource after it."""
    return rehearse_op(providers, step.op, step.key, step.spec, step.declared, step.changes,
                       state, rid)  # fmt: skip


def rehearse_op(
    providers: ProviderSet,
    op: Op,
    key: ResourceKey,
    spec: ResourceSpec | None,
    declared: ResourceSpec | None,
    changes: tuple[Change, ...],
    state: Mapping[ResourceKey, tuple[str, ResourceSpec | None]],
    rid: str,
) -> ResourceSpec | None:
    provider = providers.for_kind(key.kind)
    if op is Op.CREATE:
        assert spec is not None
        provider.create(spec, request_id=rid)
        return spec
    if op is Op.DELETE:
        with contextlib.suppress(NotFound):  # already gone: apply takes that as done
            provider.delete(key, request_id=rid)
        return None
    if op is not Op.UPDATE:  # RECORD / FORGET write the state store only: no call
        return spec
    if key in state:
        before = state[key][1]
        if before is None:
            raise PermanentError(f"{key}: updated after an earlier step deletes it")
        live: Observed[ResourceSpec] = Observed(before, LATER_FINGERPRINT)
    else:
        live = provider.get(key)
    target = update_target(key, declared, changes, live.spec)
    if target != live.spec:
        provider.update(target, fingerprint=live.fingerprint, request_id=rid)
    return target


def describe(step: Step) -> str:
    text = f"step {step.describe()}"
    if step.op is Op.RECORD:
        text += "; no call: apply would record it in the state store"
    elif step.op is Op.FORGET:
        text += "; no call: apply would drop its record from the state store"
    return text
