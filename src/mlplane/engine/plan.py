"""Plan = diff of desired stacks against recorded state (last applied) and observed state.

Each step says create / update / replace / delete / noop and which steps it waits for:
a resource is created after what it refers to, and deleted after everything that referred to it
has stopped doing so (so deletes run in reverse dependency order). Replacing an immutable
resource under the same name is delete-before-create (GCP names are unique, so the name does not
allow create-before-delete); its referrers are replaced with it. Giving the replacement a new
name yields create -> repoint referrers -> delete old, i.e. create-before-delete.

Lifecycle plans never delete or replace a passive resource and never update a static one; only
a plan made with `allow_passive=True` (an explicit destroy/bootstrap repair) may.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mlplane.model.compute import Change, Lifecycle, Mutability, ResourceKey, ResourceSpec
from mlplane.providers.base import Observed

from .desired import DesiredState
from .state import RecordedResource
from .steps import Action, Op, Plan, PlanError, ReplaceStrategy, Step

__all__ = ["Action", "Op", "Plan", "PlanError", "ReplaceStrategy", "Step", "plan"]


def plan(
    desired: DesiredState,
    recorded: Mapping[ResourceKey, RecordedResource],
    observed: Mapping[ResourceKey, Observed[Any] | None] | None = None,
    *,
    allow_passive: bool = False,
) -> Plan:
    """Diff `desired` against `recorded` (and `observed`, where known: None = absent)."""
    planner = _Planner(desired, recorded, observed or {}, allow_passive)
    # Without observations, a reference to something unrecorded may still exist at the provider.
    planner.verify_refs = observed is not None
    return planner.run()


class _Planner:
    def __init__(
        self,
        desired: DesiredState,
        recorded: Mapping[ResourceKey, RecordedResource],
        observed: Mapping[ResourceKey, Observed[Any] | None],
        allow_passive: bool,
    ) -> None:
        self.desired = desired
        self.recorded = recorded
        self.observed = observed
        self.allow_passive = allow_passive
        self.stacks = frozenset(desired.stack_names)
        # What exists now: recorded rows the provider did not report gone, plus unrecorded
        # resources the provider reported.
        self.current: dict[ResourceKey, ResourceSpec] = {}
        for key, rec in recorded.items():
            if not (key in observed and observed[key] is None):
                self.current[key] = rec.spec
        for key, obs in observed.items():
            if obs is not None and key not in recorded:
                self.current[key] = obs.spec
        self.final: dict[ResourceKey, ResourceSpec] = dict(self.current)
        self.decided: dict[ResourceKey, Step] = {}  # key -> primary step (create/update/noop..)
        self.removals: dict[ResourceKey, Step] = {}  # key -> delete half (delete or replace)
        self.verify_refs = True

    # -- decisions -----------------------------------------------------------------------------

    def run(self) -> Plan:
        self._desired_resources()
        self._changes()
        self._deletes()
        self._cascade_replaces()
        return Plan(self._order(self._with_dependencies()), self.desired.stack_names)

    def _version(self, key: ResourceKey) -> int | None:
        rec = self.recorded.get(key)
        return rec.version if rec else None

    def _desired_resources(self) -> None:
        for stack in self.desired.stacks:
            for spec in stack.resources:
                key = spec.key
                if key in self.decided:
                    raise PlanError(f"{key} is listed twice in the desired state")
                rec = self.recorded.get(key)
                if rec is not None and rec.stack != stack.name:
                    raise PlanError(
                        f"{key} belongs to stack '{rec.stack}', not '{stack.name}'; "
                        "a resource is owned by exactly one stack"
                    )
                self.decided[key] = self._diff(stack.name, spec)

    def _diff(self, stack: str, spec: ResourceSpec) -> Step:
        key, cur, version = spec.key, self.current.get(spec.key), self._version(spec.key)
        if cur is None:
            self.final[key] = spec
            why = "recorded but missing at the provider" if key in self.recorded else ""
            return Step(
                f"create:{key}", Action.CREATE, Op.CREATE, key, stack, spec=spec,
                base_version=version, reason=why,
            )  # fmt: skip
        if type(cur) is not type(spec):
            raise PlanError(
                f"{key}: exists as {type(cur).__name__}, desired as {type(spec).__name__}"
            )
        target = spec.merge_live(cur)
        self.final[key] = target
        if target == cur:
            op = Op.NONE if key in self.recorded else Op.RECORD
            return Step(
                f"noop:{key}", Action.NOOP, op, key, stack, spec=target, previous=cur,
                base_version=version,
                reason="exists at the provider as desired; adopting it" if op is Op.RECORD else "",
            )  # fmt: skip
        diff = target.changed_fields(cur)
        if key not in self.recorded:
            raise PlanError(
                f"{key} exists at the provider but was not created by mlplane, and differs from "
                f"the desired spec in {', '.join(diff)}; delete or rename it"
            )
        kind = type(spec)
        if kind.MUTABILITY is Mutability.STATIC:
            self._protect(key, kind, f"is static; changed fields: {', '.join(diff)}")
        if kind.MUTABILITY is Mutability.IMMUTABLE:
            return self._replace(stack, key, cur, target, diff, "immutable kind")
        if set(diff) & kind.REPLACE_FIELDS:
            return self._replace(stack, key, cur, target, diff, "fields that need a new resource")
        return Step(
            f"update:{key}", Action.UPDATE, Op.UPDATE, key, stack, spec=target, previous=cur,
            declared=spec, diff=diff, base_version=version,
        )  # fmt: skip

    def _protect(self, key: ResourceKey, kind: type[ResourceSpec], why: str) -> None:
        if not self.allow_passive:
            raise PlanError(
                f"{key} is a passive {kind.MUTABILITY} resource and {why}: lifecycle operations "
                "never delete a passive resource or update a static one (an explicit destroy "
                "with allow_passive may)"
            )

    def _replace(
        self,
        stack: str,
        key: ResourceKey,
        cur: ResourceSpec,
        spec: ResourceSpec,
        diff: tuple[str, ...],
        why: str,
    ) -> Step:
        if type(spec).LIFECYCLE is Lifecycle.PASSIVE:
            self._protect(key, type(spec), "would be replaced")
        self.final[key] = spec
        dbc = ReplaceStrategy.DELETE_BEFORE_CREATE
        self.removals[key] = Step(
            f"delete:{key}",
            Action.REPLACE,
            Op.DELETE,
            key,
            stack,
            previous=cur,
            diff=diff,
            strategy=dbc,
            base_version=self._version(key),
            reason=why,
        )
        return Step(
            f"create:{key}",
            Action.REPLACE,
            Op.CREATE,
            key,
            stack,
            spec=spec,
            previous=cur,
            diff=diff,
            strategy=dbc,
            reason=why,
        )

    def _changes(self) -> None:
        grouped: dict[ResourceKey, list[Change]] = defaultdict(list)
        origin: dict[ResourceKey, str] = {}
        for stack in self.desired.stacks:
            for change in stack.changes:
                grouped[change.target].append(change)
                origin.setdefault(change.target, stack.name)
        for key, changes in grouped.items():
            step = self.decided.get(key)
            cur = self.current.get(key)
            live = self.observed.get(key)
            if step is None and live is not None:
                # A shared resource edited by intents: plan against the live object, which
                # apply re-reads anyway (the record may lag another command's change).
                cur = self.current[key] = live.spec
            base = self.final.get(key) if step is not None else cur
            if base is None:
                raise PlanError(f"a change targets {key}, which neither exists nor is desired")
            if type(base).MUTABILITY is not Mutability.DYNAMIC:
                raise PlanError(f"{key} is {type(base).MUTABILITY}: changes apply to dynamic kinds")
            try:
                predicted = base.with_changes(changes)
            except (ValueError, TypeError) as exc:
                raise PlanError(f"{key}: {exc}") from exc
            self.final[key] = predicted
            if step is not None and step.op in (Op.CREATE, Op.UPDATE):
                diff = predicted.changed_fields(cur) if cur else ()
                self.decided[key] = replace(step, spec=predicted, changes=tuple(changes), diff=diff)
            elif step is not None and step.action is Action.REPLACE:
                raise PlanError(f"{key} is being replaced; it cannot take changes in the same plan")
            elif cur is not None and predicted != cur:
                rec = self.recorded.get(key)
                owner = step.stack if step else rec.stack if rec else origin[key]
                self.decided[key] = Step(
                    f"update:{key}",
                    Action.UPDATE,
                    Op.UPDATE,
                    key,
                    owner,
                    spec=predicted,
                    previous=cur,
                    declared=step.spec if step else None,
                    changes=tuple(changes),
                    diff=predicted.changed_fields(cur),
                    base_version=self._version(key),
                    origin=origin[key] if owner not in self.stacks else "",
                )

    def _deletes(self) -> None:
        for key, rec in self.recorded.items():
            if rec.stack not in self.stacks or key in self.decided:
                continue
            if type(rec.spec).LIFECYCLE is Lifecycle.PASSIVE:
                self._protect(key, type(rec.spec), "would be deleted")
            gone = key in self.observed and self.observed[key] is None
            self.final.pop(key, None)
            self.removals[key] = Step(
                f"delete:{key}",
                Action.DELETE,
                Op.FORGET if gone else Op.DELETE,
                key,
                rec.stack,
                previous=rec.spec,
                base_version=rec.version,
                reason="already gone at the provider" if gone else "",
            )

    def _cascade_replaces(self) -> None:
        """A resource deleted-before-recreated under its name takes its referrers with it."""
        self.referrers: dict[ResourceKey, list[ResourceKey]] = defaultdict(list)
        for key, spec in self.current.items():
            for ref in spec.references():
                self.referrers[ref].append(key)
        queue = [k for k, s in self.removals.items() if s.action is Action.REPLACE]
        while queue:
            replaced = queue.pop()
            for ref in self.referrers.get(replaced, ()):
                after = self.final.get(ref)
                if ref in self.removals or after is None or replaced not in after.references():
                    continue
                owner = self.recorded[ref].stack if ref in self.recorded else None
                if owner not in self.stacks:
                    raise PlanError(
                        f"replacing {replaced} (same name, delete first) needs {ref} replaced too, "
                        f"which belongs to stack '{owner}'; deploy the change under a new name"
                    )
                assert owner is not None
                cur = self.current[ref]
                step = self._replace(owner, ref, cur, after, (), f"refers to replaced {replaced}")
                self.decided[ref] = step
                queue.append(ref)

    # -- dependencies and order ----------------------------------------------------------------

    def _with_dependencies(self) -> list[Step]:
        creator = {k: s.id for k, s in self.decided.items() if s.op is Op.CREATE}
        updater = {k: s for k, s in self.decided.items() if s.op is Op.UPDATE}
        out: list[Step] = []
        for key, step in self.decided.items():
            deps: list[str] = []
            if step.op in (Op.CREATE, Op.UPDATE, Op.RECORD):
                assert step.spec is not None
                for ref in step.spec.references():
                    if ref in creator:
                        deps.append(creator[ref])
                    elif ref not in self.final and (self.verify_refs or ref in self.recorded):
                        raise PlanError(
                            f"{key} refers to {ref}, which neither exists nor is desired"
                        )
                if key in self.removals:
                    deps.append(self.removals[key].id)
            out.append(replace(step, depends_on=tuple(dict.fromkeys(deps))))
        for key, step in self.removals.items():
            deps = []
            for ref in self.referrers.get(key, ()):
                after = self.final.get(ref)
                if ref in self.removals:
                    deps.append(self.removals[ref].id)
                elif after is not None and key in after.references():
                    hint = (
                        " (detach it from the URL map with a DetachBackendService change)"
                        if ref.kind == "urlMap"
                        else ""
                    )
                    raise PlanError(f"cannot delete {key}: {ref} still refers to it{hint}")
                elif ref in updater:
                    deps.append(updater[ref].id)
            out.append(replace(step, depends_on=tuple(dict.fromkeys(deps))))
        return out

    @staticmethod
    def _order(steps: list[Step]) -> tuple[Step, ...]:
        by_id = {s.id: s for s in steps}
        waiting = {s.id: len(s.depends_on) for s in steps}
        dependants: dict[str, list[str]] = defaultdict(list)
        for s in steps:
            for d in s.depends_on:
                dependants[d].append(s.id)
        ready = deque(s.id for s in steps if not s.depends_on)
        ordered: list[Step] = []
        while ready:
            sid = ready.popleft()
            ordered.append(by_id[sid])
            for nxt in dependants[sid]:
                waiting[nxt] -= 1
                if waiting[nxt] == 0:
                    ready.append(nxt)
        if len(ordered) != len(steps):
            stuck = sorted(sid for sid, n in waiting.items() if n > 0)
            raise PlanError(f"dependency cycle among: {', '.join(stuck[:10])}")
        return tuple(ordered)
