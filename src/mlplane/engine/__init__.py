"""Desired state -> plan (diff) -> authorized, journaled, parallel apply; SQLite state store.

store = StateStore(Path(".mlplane/state.db"))
engine = Engine(store, providers, authorizer, EngineSettings(project="my-proj"))
bundle = revision_bundle("sentiment", "r12", settings)       # mlplane.model.compute
desired = DesiredState.of(StackSpec(bundle.stack, bundle.resources, (route_to(...),)))
print(engine.plan(desired).render())
engine.apply(desired, principal).raise_for_failures()
"""

from mlplane.engine.apply import ApplyReport, StepResult, StepStatus
from mlplane.engine.authz import Authorizer
from mlplane.engine.desired import DesiredState, StackSpec
from mlplane.engine.engine import Engine, EngineSettings
from mlplane.engine.journal import EventKind, Intent, IntentStatus, Journal, JournalEvent
from mlplane.engine.plan import plan
from mlplane.engine.runner import RetryPolicy, StepRunner
from mlplane.engine.state import LockTimeout, RecordedResource, StaleWrite, StateStore
from mlplane.engine.steps import Action, Op, Plan, PlanError, ReplaceStrategy, Step

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
    "ReplaceStrategy",
    "RetryPolicy",
    "StackSpec",
    "StaleWrite",
    "StateStore",
    "Step",
    "StepResult",
    "StepRunner",
    "StepStatus",
    "plan",
]
