"""CI triggers, run locally like Cloud Build runs them: a user invokes a trigger, the trigger's
pipeline runs as the trigger's own service account, and a build record says who, what, when.

Invoking checks the invoker as Cloud Build would (`cloudbuild.builds.create`) and, since Cloud
Build has no per-trigger IAM, also checks that the invoker holds its process's "invoke
triggers" action (docs/decisions/0006-trigger-invocation.md).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TypeVar

from mlplane.errors import ConfigError, MlplaneError, PermissionDenied
from mlplane.model.principals import Principal
from mlplane.workflows.session import Session

R = TypeVar("R")
Pipeline = Callable[[Principal], R]


@dataclass(frozen=True)
class Build:
    id: str
    trigger: str
    invoker: str
    runs_as: str
    params: dict[str, str] = field(default_factory=dict)
    status: str = "WORKING"  # WORKING, SUCCESS, FAILURE
    started: float = 0.0
    finished: float | None = None
    error: str | None = None


def _builds_dir(session: Session) -> str:
    path = os.path.join(session.state_dir, "builds")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _write(session: Session, build: Build) -> None:
    directory = _builds_dir(session)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".build.")
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(build), f, indent=1)
    os.replace(tmp, os.path.join(directory, f"{build.id}.json"))


def list_builds(session: Session) -> list[Build]:
    out = []
    for name in sorted(os.listdir(_builds_dir(session))):
        if name.endswith(".json") and not name.startswith("."):
            with open(os.path.join(_builds_dir(session), name)) as f:
                out.append(Build(**json.load(f)))
    return sorted(out, key=lambda b: b.started)


def authorize_invocation(session: Session, trigger: str, invoker: Principal) -> Principal:
    """Check that `invoker` may run `trigger`; return the service account it runs as."""
    policy = session.authz.policy
    info = policy.triggers.get(trigger)
    if info is None:
        known = ", ".join(sorted(policy.triggers))
        raise ConfigError("argument", "TRIGGER", f"no trigger '{trigger}' (triggers: {known})")
    if info.event != "manual":
        raise ConfigError(
            "argument", "TRIGGER", f"trigger '{trigger}' is not manual: it {info.usage}"
        )
    invoke_actions = [
        a.id
        for a in policy.actions.values()
        if a.process == info.process
        and a.who in ("user", "both")
        and any("cloudbuild.builds.create" in g.permissions for g in a.grants)
    ]
    decision = session.authz.authorize(
        invoker, invoke_actions[0] if invoke_actions else "cloudbuild.builds.create"
    )
    if not decision.allowed:
        raise PermissionDenied(
            f"{invoker} may not invoke the CI trigger '{trigger}': {decision.explain()}", decision
        )
    return Principal("serviceAccount", info.runs_as)


def run_trigger(
    session: Session,
    trigger: str,
    invoker: Principal,
    pipeline: Pipeline[R],
    params: Mapping[str, str] | None = None,
) -> tuple[Build, R]:
    """Invoke `trigger` as `invoker`; its `pipeline` runs as the trigger's service account.

    The build record is written before the pipeline starts and updated when it ends; a failed
    pipeline's error is re-raised after it is recorded."""
    runs_as = authorize_invocation(session, trigger, invoker)
    build = Build(
        id=time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6],
        trigger=trigger,
        invoker=str(invoker),
        runs_as=str(runs_as),
        params=dict(params or {}),
        started=time.time(),
    )
    _write(session, build)
    try:
        result = pipeline(runs_as)
    except BaseException as exc:
        error = str(exc) if isinstance(exc, MlplaneError) else f"{type(exc).__name__}: {exc}"
        _write(session, _finish(build, "FAILURE", error))
        raise
    build = _finish(build, "SUCCESS", None)
    _write(session, build)
    return build, result


def _finish(build: Build, status: str, error: str | None) -> Build:
    return Build(**{**asdict(build), "status": status, "finished": time.time(), "error": error})
