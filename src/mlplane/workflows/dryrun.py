"""`--dry-run`: what a mutating command would send, in order, so a user can review it before it
touches a project; nothing that mutates is sent (docs/decisions/1300-dry-run.md).

Each function here runs its command's validation and authorization first, exactly as the
command does (bad input and denials fail the same way), then logs, instead of sending:
- for commands that change resources through the engine as the caller (notebook create and
  delete, train run --remote, cancel and reap, serve deploy --direct, and the build steps
  `ci step deploy|undeploy`): each planned step's calls, made by the same provider code on a
  client that sends reads and records the rest (`Engine.rehearse`);
- for commands that run a CI trigger (serve deploy|undeploy|bootstrap, ci trigger): the
  caller's one call, `cloudbuild.projects.triggers.run` with its substitutions.
The data commands (artifacts, secrets) log theirs through the data SDK (`rehearse_*`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mlplane.apis.request import DryRunLog
from mlplane.engine.desired import DesiredState, StackSpec
from mlplane.engine.engine import Engine, EngineSettings
from mlplane.engine.rehearsal import Rehearsal
from mlplane.model.compute import ForwardingRule, model_prefix
from mlplane.model.routes import revision_prefix
from mlplane.workflows import compose, notebooks, serving, training
from mlplane.workflows.ci import (
    authorize_invocation,
    check_push_trigger,
    check_trigger,
    trigger_call,
)
from mlplane.workflows.serving import DeployRequest
from mlplane.workflows.session import Session


class DryRun:
    """One dry run: the caller's session, the log, and a client that sends reads only."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.log = DryRunLog(str(session.principal))
        self.api = compose.dry_run_client(session, self.log)

    def engine(self) -> Engine:
        """An engine acting as the caller whose providers record their mutations."""
        s = self.session
        providers = compose.provider_set(s, self.api)
        return Engine(s.store, providers, s.authz, EngineSettings(project=s.project_id))

    def apply(self, desired: DesiredState, *, after: Rehearsal | None = None) -> Rehearsal:
        """What `Engine.apply(desired)` would send, as the caller (authorized first)."""
        return self.engine().rehearse(
            desired, self.session.principal, after=after, note=self.log.note
        )

    def trigger(
        self, trigger: str, substitutions: Mapping[str, str], branch: str | None = None
    ) -> None:
        """What running `trigger` would send: the one `triggers.run` call (a push trigger as
        a push to `branch` would run it)."""
        if branch is None:
            check_trigger(self.session, trigger)
        else:
            check_push_trigger(self.session, trigger, branch)
        authorize_invocation(self.session, trigger)
        runs_as = self.session.authz.policy.triggers[trigger].runs_as
        step = "train --spec SPEC" if trigger == "train" else f"{trigger} ..."
        self.log.note(
            f"run the CI trigger '{trigger}'; its build runs as {runs_as}, and what the build "
            f"sends is its own (review it as that account: `mlplane ci step {step} --dry-run`)"
        )
        params, body = trigger_call(self.session, trigger, substitutions, branch or "main")
        self.api.call("cloudbuild.projects.triggers.run", params, body)

    def render(self) -> str:
        return self.log.render()


def push_trigger(session: Session, trigger: str, branch: str) -> DryRun:
    """`mlplane ci run TRIGGER --branch BRANCH --dry-run`."""
    dry = DryRun(session)
    dry.trigger(trigger, {}, branch)
    return dry


# -- serving ---------------------------------------------------------------------------------


def deploy(session: Session, req: DeployRequest) -> DryRun:
    before, _ = serving.deploy_stacks(session, req)
    serving.check_unchanged(session, before, req)
    serving.frontend_stack(session, choose=False)  # a busy port fails here
    dry = DryRun(session)
    dry.trigger("deploy", serving.trigger_substitutions(req))
    return dry


def undeploy(session: Session, service: str, revision: str) -> DryRun:
    serving.undeploy_desired(session, service, revision)  # an unknown revision fails here
    dry = DryRun(session)
    dry.trigger("undeploy", {"_SERVICE": service, "_REVISION": revision})
    return dry


def bootstrap(session: Session) -> DryRun:
    serving.frontend_stack(session, choose=False)
    dry = DryRun(session)
    dry.trigger("deploy", {"_BOOTSTRAP": "true"})
    return dry


def deploy_direct(session: Session, req: DeployRequest) -> DryRun:
    _, stack = serving.deploy_stacks(session, req)
    front = serving.frontend_stack(session, choose=False)
    dry = DryRun(session)
    dry.apply(DesiredState.of(front, stack))
    return dry


def deploy_step(session: Session, req: DeployRequest) -> DryRun:
    """The `deploy` build's step: the revision with its own route, then (once it answers) the
    service route's new weights, planned as if the first part had been applied."""
    before, after = serving.deploy_stacks(session, req, read_artifact=False)
    serving.check_unchanged(session, before, req)
    front = serving.frontend_stack(session, choose=False)
    dry = DryRun(session)
    first = dry.apply(DesiredState.of(front, before))
    rule = next(
        (s for _, s in first.state.values() if isinstance(s, ForwardingRule)),
        serving.recorded_forwarding_rule(session),
    )
    url = session.platform.frontend_base(rule) + revision_prefix(req.service, req.revision)
    dry.log.note(f"then wait until GET {url}healthz answers 200 through the load balancer")
    if after != before:
        prefix = model_prefix(req.service)
        dry.log.note(f"then route {req.traffic}% of {prefix} to {req.revision}")
        dry.apply(DesiredState.of(after), after=first)
    return dry


def undeploy_step(session: Session, service: str, revision: str) -> DryRun:
    desired = serving.undeploy_desired(session, service, revision)
    dry = DryRun(session)
    dry.apply(desired)
    return dry


def bootstrap_step(session: Session) -> DryRun:
    front = serving.frontend_stack(session, choose=False)
    dry = DryRun(session)
    dry.apply(DesiredState.of(front))
    return dry


# -- notebooks -------------------------------------------------------------------------------


def notebook_create(session: Session, name: str, machine_type: str) -> DryRun:
    dry = DryRun(session)
    user = session.principal
    notebooks.check_create(session, name, user)
    dry.apply(notebooks.create_desired(session, name, machine_type, user))
    dry.log.note("then wait until JupyterLab answers (reads the instance and its guest attribute)")
    return dry


def notebook_delete(session: Session, name: str) -> DryRun:
    dry = DryRun(session)
    nb = notebooks.delete_target(session, name)
    dry.apply(DesiredState.destroy([notebooks.STACK_PREFIX + nb.instance]))
    return dry


# -- training --------------------------------------------------------------------------------


def train_remote(session: Session, spec_path: Path, *, wait: bool) -> DryRun:
    spec = training.load_spec(spec_path)
    dry = DryRun(session)
    instance = training.training_instance(session, spec, spec_path.parent, session.principal)
    stack = training.STACK_PREFIX + instance.name
    dry.log.note(f"the VM's name ends in a random suffix ({instance.name}): a run draws its own")
    dry.apply(DesiredState.of(StackSpec(stack, (instance,))))
    if wait:
        dry.log.note(
            "then wait until the VM deletes itself (reads the instance), and drop its record "
            "from the state store"
        )
    return dry


def train_cancel(session: Session, instance: str) -> DryRun:
    dry = DryRun(session)
    dry.apply(DesiredState.destroy([training.cancel_target(session, instance)]))
    return dry


def train_reap(session: Session) -> DryRun:
    dry = DryRun(session)
    instances = training.reapable(session)
    for instance in instances:
        dry.apply(DesiredState.destroy([training.STACK_PREFIX + instance]))
    if not instances:
        dry.log.note("nothing to reap")
    return dry


def train_ci(session: Session, spec_path: Path) -> DryRun:
    training.load_spec(spec_path)  # bad input fails here
    relative = training.spec_in_source(session, spec_path)
    dry = DryRun(session)
    dry.trigger("train", {"_SPEC": relative})
    return dry


def train_step(session: Session, spec_path: Path) -> DryRun:
    """The `train` build's step: the job (not run here), then one create-only upload per
    output file under gs://BUCKET/SPEC/BUILD_ID/ (authorized as the step's identity)."""
    from mlplane.data.artifacts import ArtifactStore

    spec = training.load_spec(spec_path)
    dry = DryRun(session)
    build_id = os.environ.get("BUILD_ID") or "<BUILD_ID>"
    prefix = training.artifact_prefix(session, spec.name, build_id)
    dry.log.note(
        f"first the job runs here ({spec.entrypoint}, as {session.principal}); a dry run does "
        "not run it, so its output files are not known: each is uploaded as below"
    )
    store = ArtifactStore.open(session.project_file)
    store.rehearse_write(
        prefix + "<OUTPUT_FILE>", dry.log, size=None, source="of the output file",
        content_type="<its type, from its name>", if_generation_match=0,
    )  # fmt: skip
    return dry
