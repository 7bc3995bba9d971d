"""Desired state -> plan (diff) -> authorized, journaled, parallel apply; SQLite state store.

store = StateStore(Path(".mlplane/state.db"))
engine = Engine(store, providers, authorizer, EngineSettings(project="my-proj"))
bundle = revision_bundle("sentiment", "r12", settings)       # mlplane.model.compute
desired = DesiredState.of(StackSpec(bundle.stack, bundle.resources, (route_to(...),)))
print(engine.plan(desired).render())
engine.apply(desired, principal).raise_for_failures()
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's, without importing typing (start-up paths)
if TYPE_CHECKING:
    from typing import Any

    from mlplane.engine.apply import ApplyReport, StepResult, StepStatus
    from mlplane.engine.authz import Authorizer
    from mlplane.engine.desired import DesiredState, StackSpec
    from mlplane.engine.engine import Engine, EngineSettings
    from mlplane.engine.journal import EventKind, Intent, IntentStatus, Journal, JournalEvent
    from mlplane.engine.rehearsal import Rehearsal
    from mlplane.engine.runner import RetryPolicy, StepRunner
    from mlplane.engine.state import LockTimeout, RecordedResource, StaleWrite, StateStore
    from mlplane.engine.steps import Action, Op, Plan, PlanError, ReplaceStrategy, Step

# Names are imported on first use (PEP 562; the planner is `mlplane.engine.plan.plan`, not
# re-exported: its module shares the name): reading the state store (`mlplane status`) must not
# pay for the planner and the specs' validation.
_EXPORTS: dict[str, str] = {
    "ApplyReport": "apply",
    "StepResult": "apply",
    "StepStatus": "apply",
    "Authorizer": "authz",
    "DesiredState": "desired",
    "StackSpec": "desired",
    "Engine": "engine",
    "EngineSettings": "engine",
    "EventKind": "journal",
    "Intent": "journal",
    "IntentStatus": "journal",
    "Journal": "journal",
    "JournalEvent": "journal",
    "Rehearsal": "rehearsal",
    "RetryPolicy": "runner",
    "StepRunner": "runner",
    "LockTimeout": "state",
    "RecordedResource": "state",
    "StaleWrite": "state",
    "StateStore": "state",
    "Action": "steps",
    "Op": "steps",
    "Plan": "steps",
    "PlanError": "steps",
    "ReplaceStrategy": "steps",
    "Step": "steps",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlplane.engine' has no attribute '{name}'")
    from importlib import import_module  # not at import: it imports warnings (start-up path)

    value = getattr(import_module(f"mlplane.engine.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Action",
    "ApplyReport",
    "Authorizer",
    "DesiredState",
    "Engine",
    "EngineSettings",
    "EventKind",
    "Intent",
    "IntentStatus",
    "Journal",
    "JournalEvent",
    "LockTimeout",
    "Op",
    "Plan",
    "PlanError",
    "RecordedResource",
    "Rehearsal",
    "ReplaceStrategy",
    "RetryPolicy",
    "StackSpec",
    "StaleWrite",
    "StateStore",
    "Step",
    "StepResult",
    "StepRunner",
    "StepStatus",
]
