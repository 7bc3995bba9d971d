"""The engine's front door: plan and apply desired stacks for an acting principal.

`apply` = lock the stacks -> authorize everything (before any provider call) -> roll forward
intents a dead process left open -> observe -> plan -> execute in parallel -> report.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from mlplane.errors import MlplaneError, TransientError
from mlplane.model.compute import (
    SPEC_TYPES,
    PermissionCheck,
    ResourceKey,
    Verb,
)
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef
from mlplane.providers.base import DEFAULT_POLL, SYSTEM_CLOCK, Clock, Observed, PollPolicy
from mlplane.providers.errors import NotFound
from mlplane.providers.registry import ProviderSet

from .apply import ApplyReport, execute
from .authz import Authorizer, require, step_checks, verb_checks
from .desired import DesiredState
from .journal import EventHook, Intent, IntentStatus, Journal
from .plan import plan
from .rehearsal import (
    Rehearsal,
    describe,
    overlaid,
    rehearse_op,
    rehearse_step,
    request_id,
    require_recording,
)
from .runner import RetryPolicy, StepRunner
from .state import RecordedResource, StateStore
from .steps import Plan


@dataclass(frozen=True)
class EngineSettings:
    project: str
    max_workers: int = 8
    lock_timeout: float = 600.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    poll: PollPolicy = DEFAULT_POLL


class Engine:
    def __init__(
        self,
        store: StateStore,
        providers: ProviderSet,
        authorizer: Authorizer,
        settings: EngineSettings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_event: EventHook | None = None,
    ) -> None:
        self.store = store
        self.providers = providers
        self.authorizer = authorizer
        self.settings = settings
        self.clock = clock
        self.journal = Journal(store, on_event)

    # -- reading -------------------------------------------------------------------------------

    def observe(self, keys: Iterable[ResourceKey]) -> dict[ResourceKey, Observed[Any] | None]:
        """`get` each key from its provider, in parallel; None where it does not exist."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        workers = min(self.settings.max_workers, len(wanted))
        with ThreadPoolExecutor(workers, thread_name_prefix="mlplane-observe") as pool:
            return dict(zip(wanted, pool.map(self._get, wanted), strict=True))

    def _get(self, key: ResourceKey) -> Observed[Any] | None:
        provider = self.providers.for_kind(key.kind)
        for attempt in range(self.settings.retry.attempts + 1):
            try:
                return provider.get(key)
            except NotFound:
                return None
            except TransientError as exc:
                if attempt == self.settings.retry.attempts:
                    raise
                self.clock.sleep(max(exc.delay, self.settings.retry.base_delay))
        raise AssertionError("unreachable")

    def plan(
        self,
        desired: DesiredState,
        *,
        principal: Principal | None = None,
        allow_passive: bool = False,
        observe: bool = True,
    ) -> Plan:
        """Preview: diff desired against the store (and the providers, when `observe`).

        With a `principal`, its right to read what is observed is checked before any `get`.
        """
        recorded = self.store.load()
        relevant = _relevant(desired, recorded)
        if principal is not None and observe:
            project = self.settings.project
            checks = [c for key in relevant for c in _read_checks(key, project)]
            require(self.authorizer, principal, dict.fromkeys(checks))
        observed = self.observe(relevant) if observe else None
        return plan(desired, recorded, observed, allow_passive=allow_passive)

    # -- applying ------------------------------------------------------------------------------

    def apply(
        self, desired: DesiredState, principal: Principal, *, allow_passive: bool = False
    ) -> ApplyReport:
        """Bring the desired stacks about; see the module docstring for the sequence.

        Raises PermissionDenied (before any provider call), PlanError, LockTimeout; step
        failures are reported in the ApplyReport (`raise_for_failures()` to raise them).
        """
        run_id = uuid.uuid4().hex[:12]
        stacks = desired.stack_names
        with self.store.lock(stacks, self.settings.lock_timeout):
            recorded = self.store.load()
            preview = plan(desired, recorded, None, allow_passive=allow_passive)
            open_intents = self.journal.open_intents(stacks)
            self._authorize_upfront(principal, preview, desired, recorded, open_intents)

            runner = self._runner(run_id, principal)
            recovered = self._recover(open_intents, runner)

            recorded = self.store.load()
            observed = self.observe(_relevant(desired, recorded))
            final = plan(desired, recorded, observed, allow_passive=allow_passive)
            project = self.settings.project
            for step in final.executable:
                require(self.authorizer, principal, step_checks(step, project))
            results, errors = execute(final, runner.run, max_workers=self.settings.max_workers)
        return ApplyReport(run_id, final, results, recovered, errors)

    def rehearse(
        self,
        desired: DesiredState,
        principal: Principal,
        *,
        allow_passive: bool = False,
        after: Rehearsal | None = None,
        note: Callable[[str], None] | None = None,
    ) -> Rehearsal:
        """A dry run of `apply` (engine/rehearsal.py): the same authorization and plan, then
        each step's provider calls in plan order, on providers whose client records mutations
        instead of sending them (raises NotRecording otherwise). Nothing is locked, journaled,
        recorded or waited for. `after`: plan as if that rehearsal had been applied. `note`
        hears each step before its calls are made.
        """
        require_recording(self.providers)
        tell = note or (lambda _: None)
        state = dict(after.state) if after is not None else {}
        recorded = overlaid(self.store.load(), state)
        preview = plan(desired, recorded, None, allow_passive=allow_passive)
        intents = self.journal.open_intents(desired.stack_names) if after is None else []
        self._authorize_upfront(principal, preview, desired, recorded, intents)
        recovered = []
        for intent in intents:
            tell(f"roll forward an open intent first: {intent.op} {intent.key} "
                 f"(run {intent.run_id})")  # fmt: skip
            spec = rehearse_op(
                self.providers, intent.op, intent.key, intent.spec, intent.declared,
                intent.changes, state, intent.request_id,
            )  # fmt: skip
            state[intent.key] = (intent.owner, spec)
            recovered.append(f"{intent.op} {intent.key} (run {intent.run_id})")
        recorded = overlaid(self.store.load(), state)
        observed = self.observe(k for k in _relevant(desired, recorded) if k not in state)
        observed.update({k: Observed(s) if s else None for k, (_, s) in state.items()})
        final = plan(desired, recorded, observed, allow_passive=allow_passive)
        project = self.settings.project
        for step in final.executable:
            require(self.authorizer, principal, step_checks(step, project))
        depth = after.next_depth if after is not None else 1
        for step in final.executable:
            tell(describe(step))
            spec = rehearse_step(self.providers, step, state, request_id(step.id, depth))
            state[step.key] = (step.stack, spec)
        return Rehearsal(final, tuple(recovered), state, depth)

    def _runner(self, run_id: str, principal: Principal) -> StepRunner:
        return StepRunner(
            store=self.store,
            journal=self.journal,
            providers=self.providers,
            run_id=run_id,
            principal=str(principal),
            clock=self.clock,
            retry=self.settings.retry,
            poll=self.settings.poll,
        )

    def _authorize_upfront(
        self,
        principal: Principal,
        preview: Plan,
        desired: DesiredState,
        recorded: Mapping[ResourceKey, RecordedResource],
        intents: list[Intent],
    ) -> None:
        project = self.settings.project
        checks: list[PermissionCheck] = []
        for intent in intents:
            checks += verb_checks(intent.spec, intent.op, project)
        for step in preview.executable:
            checks += step_checks(step, project)
        for key in _relevant(desired, recorded):
            checks += _read_checks(key, project)
        require(self.authorizer, principal, dict.fromkeys(checks))

    def _recover(self, intents: list[Intent], runner: StepRunner) -> tuple[str, ...]:
        """Roll forward, in journal order, what a dead process left open."""
        done: list[str] = []
        for intent in intents:
            rec = self.store.get(intent.key)
            try:
                resumed = replace(intent, recovering=True)
                runner.resume(resumed, rec.version if rec else None, IntentStatus.RECOVERED)
            except MlplaneError:
                continue  # journaled as failed; the plan that follows sees the real state
            done.append(f"{intent.op} {intent.key} (run {intent.run_id})")
        return tuple(done)


def _read_checks(key: ResourceKey, project: str) -> tuple[PermissionCheck, ...]:
    perms = SPEC_TYPES[key.kind].PERMISSIONS.get(Verb.GET, ())
    return (PermissionCheck(perms, ResourceRef(key.kind, key.name, project)),) if perms else ()


def _relevant(
    desired: DesiredState, recorded: Mapping[ResourceKey, RecordedResource]
) -> list[ResourceKey]:
    """Keys a plan of `desired` depends on: its resources, what they refer to, what its stacks
    own, and what its changes target."""
    stacks = set(desired.stack_names)
    keys: dict[ResourceKey, None] = {}
    for stack in desired.stacks:
        for spec in stack.resources:
            keys[spec.key] = None
            keys.update(dict.fromkeys(spec.references()))
        keys.update(dict.fromkeys(c.target for c in stack.changes))
    keys.update(dict.fromkeys(k for k, r in recorded.items() if r.stack in stacks))
    return list(keys)
