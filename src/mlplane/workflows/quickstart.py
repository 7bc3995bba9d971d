"""`mlplane quickstart`: the whole serving lifecycle on this machine, under the model's identities.

1. a project file (written if missing), 2. the local agent, 3. IAM compiled and the passive
front end bootstrapped through the `deploy` trigger, 4. the example model trained (twice: two
versions), 5. two revisions deployed through the trigger, 6. both answering through the load
balancer, 7. a direct deploy refused, 8. the first revision undeployed, 9. the status table.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlplane.errors import PermissionDenied
from mlplane.model.routes import revision_prefix
from mlplane.workflows.serving import (
    DeployRequest,
    bootstrap,
    deploy,
    deploy_direct,
    frontend_url,
    undeploy,
)
from mlplane.workflows.session import Session

SERVICE = "sentiment"


def first_user(session: Session) -> str:
    """The project's first user member: who the quickstart signs in when nobody is."""
    for members in session.authz.policy.process_members.values():
        for member in members:
            if member.startswith("user:"):
                return member.removeprefix("user:")
    from mlplane.errors import ConfigError

    raise ConfigError(str(session.project_file), "team.principals", "no user member to sign in")


SAMPLE = {"positive_words": 3, "negative_words": 0, "negations": 0, "exclamations": 1, "length": 20}


@dataclass(frozen=True)
class QuickstartResult:
    url: str
    deploy_seconds: tuple[float, ...]
    answers: dict[str, int]


def predict(url: str) -> tuple[int, str]:
    body = json.dumps({"instances": [SAMPLE]}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def run(project_file: Path, say: Callable[[str], None] = print) -> QuickstartResult:
    from mlplane.apis.signin import active_account
    from mlplane.examples.sentiment.train import train
    from mlplane.workflows import compose
    from mlplane.workflows.project_file import write_project_file

    step = iter(range(1, 10))
    if not project_file.exists():
        write_project_file(project_file)
        say(f"[{next(step)}/9] wrote {project_file} (project mlplane-demo, provider local)")
    else:
        say(f"[{next(step)}/9] using {project_file}")
    up = compose.agent_up(project_file)
    session = Session.open(project_file)
    if active_account() is None:
        compose.login(first_user(session))
    user = session.principal
    say(
        f"[{next(step)}/9] local agent {'started' if up.started else 'running'}: "
        f"pid {up.agent.info.pid}, API {up.agent.info.base_url}; signed in as {user}"
    )
    policy = session.authz.policy
    say(
        f"[{next(step)}/9] IAM: {len(policy.identities)} service accounts, {len(policy.actions)} "
        f"actions; acting user {user}; bootstrapping the front end through trigger 'deploy'"
    )
    bootstrap(session, progress=lambda m: None)
    artifacts = session.state_dir / "artifacts" / SERVICE
    say(f"[{next(step)}/9] training the example model twice (in process, into {artifacts})")
    for version, seed in (("v1", 7), ("v2", 11)):
        train(artifacts / version, seed=seed, progress=lambda line: say("      " + line))
    seconds = []
    say(f"[{next(step)}/9] deploying revisions r1 and r2 through trigger 'deploy'")
    for rev, version in (("r1", "v1"), ("r2", "v2")):
        result = deploy(session, DeployRequest(SERVICE, rev, artifacts / version), lambda m: None)
        seconds.append(result.seconds_to_ready)
        say(
            f"      {rev}: first 200 after {result.seconds_to_ready:.2f} s, build {result.build.id}"
        )
    base = frontend_url(session)
    answers: dict[str, int] = {}
    say(f"[{next(step)}/9] predictions through the load balancer at {base}")
    for path in (
        revision_prefix(SERVICE, "r1"),
        revision_prefix(SERVICE, "r2"),
        f"/v1/models/{SERVICE}/",
    ):
        status, body = predict(base + path + "predict")
        answers[path] = status
        say(f"      POST {path}predict -> {status} {body[:110]}")
    say(f"[{next(step)}/9] a direct deploy as {user} (no trigger) is refused:")
    try:
        deploy_direct(session, DeployRequest(SERVICE, "r3", artifacts / "v2"))
        say("      unexpectedly allowed")
    except PermissionDenied as exc:
        decision = exc.decision
        missing = getattr(decision, "missing", ())
        say(f"      denied before any provider call; missing {', '.join(missing[:3])}, ...")
        say(f"      {getattr(decision, 'sanctioned_path', None) or exc}")
    say(f"[{next(step)}/9] undeploying r1 through trigger 'undeploy'")
    undeploy(session, SERVICE, "r1", progress=lambda m: None)
    for path in (revision_prefix(SERVICE, "r1"), revision_prefix(SERVICE, "r2")):
        status, _ = predict(base + path + "predict")
        say(f"      POST {path}predict -> {status}")
    say(f"[{next(step)}/9] status (also: `mlplane status`, `mlplane serve list`)")
    return QuickstartResult(base, tuple(seconds), answers)
