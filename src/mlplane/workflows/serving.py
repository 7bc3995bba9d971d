"""The serving lifecycle: bootstrap the front end, deploy and undeploy service revisions.

Every mutation runs in a build of a CI trigger (`deploy`, `undeploy`), as the serving service
account: the user's command runs the trigger (`deploy`, `undeploy`, `bootstrap`); the build's
step runs the `*_step` function here with the build's token. Replicas run as `serving-runtime`.
A revision answers at its service's route (`/v1/models/SERVICE/`, weighted across revisions)
and at its own (`/v1/revisions/SERVICE-REV/`).
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlplane.engine.desired import DesiredState, StackSpec
from mlplane.errors import ConfigError, MlplaneError
from mlplane.model.compute import (
    FRONTEND_STACK,
    PATH_MATCHER,
    URL_MAP,
    BackendService,
    Change,
    DetachBackendService,
    ForwardingRule,
    RemoveRoute,
    ResourceSpec,
    RevisionSettings,
    SetRoute,
    WeightedBackendService,
    api_paths,
    frontend,
    model_prefix,
    remove_api_paths,
    revision_bundle,
)
from mlplane.model.routes import revision_prefix
from mlplane.model.workload import workload_metadata
from mlplane.workflows.ci import Build, poll_interval, run_trigger
from mlplane.workflows.process_image import revision_image
from mlplane.workflows.session import Session

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DeployRequest:
    service: str
    revision: str
    artifact: Path | str  # a local path, or gs://BUCKET/PREFIX/ of the artifact store
    min_replicas: int = 1
    max_replicas: int = 3
    traffic: int = 100  # percent of the service route sent to this revision
    ready_timeout: float = 60.0


@dataclass(frozen=True)
class DeployResult:
    build: Build
    service_url: str
    revision_url: str
    seconds_to_ready: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    """Free for a server on 127.0.0.1, which binds with SO_REUSEADDR (TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def frontend_stack(session: Session, *, choose: bool = True) -> StackSpec:
    """The passive front end. Its forwarding rule keeps the port it was created with. Locally
    its port is chosen once (`choose`; a dry run checks it without recording the choice)."""
    recorded = next(
        (r.spec for r in session.store.load().values() if r.key.kind == "forwardingRule"), None
    )
    if isinstance(recorded, ForwardingRule):
        port = recorded.port_range
    elif session.provider != "local":
        port = "80"
    else:
        port = _local_lb_port(session, choose=choose)
    front = frontend(url_map=URL_MAP, endpoints_service=session.endpoints_service())
    rule = front.forwarding_rule.model_copy(update={"port_range": port})
    resources = tuple(rule if r is front.forwarding_rule else r for r in front.resources)
    return StackSpec(FRONTEND_STACK, resources)


def _local_lb_port(session: Session, *, choose: bool = True) -> str:
    """The local front end's port, chosen once per project under a lock (`.mlplane/lb-port`),
    so that concurrent first deploys bootstrap the same forwarding rule. Without `choose`,
    the port already chosen, else one that could be (nothing is written)."""
    import fcntl
    import os

    chosen = session.state_dir / "lb-port"
    if not choose:
        return _lb_port(session, chosen)
    session.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(session.state_dir / "lb-port.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        port = _lb_port(session, chosen)
        if not chosen.is_file() or chosen.read_text().strip() != port:
            chosen.write_text(port + "\n")
        return port
    finally:
        os.close(fd)


def _lb_port(session: Session, chosen: Path) -> str:
    wanted = session.loaded.project.local.lb_port
    try:
        existing = chosen.read_text().strip()
    except OSError:
        existing = ""
    if existing and (not wanted or existing == str(wanted)):
        return existing  # chosen by an earlier (or concurrent) bootstrap
    if wanted and not port_free(wanted):  # fail before any resource is created
        raise ConfigError(
            str(session.project_file),
            "local.lb_port",
            f"port {wanted} on 127.0.0.1 is in use; choose another, or 0 for any free port",
        )
    return str(wanted or _free_port())


def _route(service: str, prefix: str, backends: list[tuple[BackendService, int]]) -> SetRoute:
    return SetRoute(
        url_map=URL_MAP,
        path_matcher=PATH_MATCHER,
        prefix=prefix,
        backends=tuple(
            WeightedBackendService(backend_service=b.link, weight=w) for b, w in backends
        ),
        description=f"mlplane route for {service}",
    )


@dataclass(frozen=True)
class RecordedRevision:
    service: str
    revision: str
    stack: str
    created: float
    backend_service: BackendService
    resources: tuple[ResourceSpec, ...]


def recorded_revisions(session: Session, service: str | None = None) -> list[RecordedRevision]:
    """Revisions in the state store, oldest first."""
    stacks: dict[str, list[ResourceSpec]] = {}
    created: dict[str, float] = {}
    backend: dict[str, BackendService] = {}
    for rec in session.store.load().values():
        parts = rec.stack.split("/")
        if len(parts) != 3 or parts[0] != "serving" or (service and parts[1] != service):
            continue
        stacks.setdefault(rec.stack, []).append(rec.spec)
        created[rec.stack] = min(created.get(rec.stack, rec.updated_at), rec.updated_at)
        if isinstance(rec.spec, BackendService):
            backend[rec.stack] = rec.spec
    out = [
        RecordedRevision(s.split("/")[1], s.split("/")[2], s, created[s], backend[s], tuple(r))
        for s, r in stacks.items()
        if s in backend
    ]
    return sorted(out, key=lambda r: (r.created, r.revision))


def artifact_uri(artifact: Path | str) -> str:
    text = str(artifact)
    return text if text.startswith("gs://") else str(Path(text).resolve())


def _settings(session: Session, req: DeployRequest) -> RevisionSettings:
    artifact = artifact_uri(req.artifact)
    fetch: list[str] = []
    if artifact.startswith("gs://"):
        # Each replica fetches the model as its own identity (serving-runtime) at boot.
        cache = session.state_dir / "replicas" / f"{req.service}-{req.revision}" / "artifact"
        fetch = ["python", "-m", "mlplane.data.fetch", artifact, str(cache), "--"]
    command = [
        *fetch,
        "python",
        "-m",
        "mlplane.serving",
        "--artifact",
        "{artifact}" if fetch else artifact,
        "--service",
        req.service,
        "--base-path",
        model_prefix(req.service).rstrip("/"),
        "--alias",
        revision_prefix(req.service, req.revision).rstrip("/"),
        "--endpoints-service",
        session.endpoints_service(),
    ]
    return RevisionSettings(
        zone=session.zone,
        service_account=session.email("serving-runtime"),
        min_replicas=req.min_replicas,
        max_replicas=req.max_replicas,
        check_interval_sec=1,
        timeout_sec=1,
        healthy_threshold=1,
        unhealthy_threshold=2,
        initial_delay_sec=10,
        metadata=workload_metadata(
            command, artifact=artifact, image=revision_image(session, req.service, req.revision)
        ),
    )


def check_artifact(session: Session, artifact: Path | str) -> None:
    """Fail before anything is created if the model artifact cannot be served: a local one is
    loaded and its checksums verified; a gs:// one must hold a model manifest, read as the
    caller (the invoking user may read the artifact bucket: the document's "both" serving
    reads; in the build, the serving account may too)."""
    uri = artifact_uri(artifact)
    if not uri.startswith("gs://"):
        from mlplane.serving.artifact import load_artifact

        load_artifact(uri)  # raises ArtifactError naming the path
        return
    from mlplane.data.artifacts import ArtifactStore

    store = ArtifactStore.open(session.project_file)
    prefix = uri if uri.endswith("/") else uri + "/"
    names = {o.name.rpartition("/")[2] for o in store.list(prefix, recursive=True).objects}
    if "model.json" not in names:
        raise ConfigError("--artifact", "", f"{prefix} holds no model.json (a model artifact)")


def apply_as(session: Session, desired: DesiredState, progress: Progress) -> None:
    """Apply `desired` as the caller (in a trigger's build: its service account), report each
    step, raise on failure."""
    report = session.engine().apply(desired, session.principal)
    for line in report.render().splitlines()[1:]:
        progress("  " + line.strip())
    report.raise_for_failures()


def bootstrap(session: Session, progress: Progress = print) -> Build:
    """Create the passive front end (URL map, proxy, forwarding rule, Endpoints service and
    config) through the `deploy` trigger, as the serving service account. Idempotent."""
    frontend_stack(session)  # a busy port fails here, before the trigger runs
    return run_trigger(session, "deploy", {"_BOOTSTRAP": "true"}, progress)


def bootstrap_step(session: Session, progress: Progress = print) -> None:
    """In the `deploy` build: create the front end as the build's identity."""
    apply_as(session, DesiredState.of(frontend_stack(session)), progress)


def _reason(exc: ValueError) -> str:
    """The reason of a spec's validation error, without pydantic's decoration."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in errors())
    return str(exc)


def deploy_stacks(
    session: Session, req: DeployRequest, *, read_artifact: bool = True
) -> tuple[StackSpec, StackSpec]:
    """The revision's stack before and after its traffic switch: first with its own route only
    (plus the service route when it is the service's first revision), then with the service
    route's new weights. Raises ConfigError on bad input before anything is created."""
    if not 0 < req.traffic <= 100:
        raise ConfigError("--traffic", "", f"{req.traffic} is not a percentage in 1..100")
    if not 0 <= req.min_replicas <= req.max_replicas or req.max_replicas < 1:
        raise ConfigError(
            "--min/--max",
            "",
            f"{req.min_replicas}/{req.max_replicas}: need 0 <= --min <= --max and --max >= 1",
        )
    try:
        bundle = revision_bundle(req.service, req.revision, _settings(session, req))
    except ValueError as exc:
        raise ConfigError("arguments", "SERVICE/--revision", _reason(exc)) from None
    if read_artifact or not artifact_uri(req.artifact).startswith("gs://"):
        check_artifact(session, req.artifact)
    others = [r for r in recorded_revisions(session, req.service) if r.revision != req.revision]
    weights: list[tuple[BackendService, int]] = [(bundle.backend_service, req.traffic)]
    if req.traffic < 100:
        if not others:
            raise ConfigError(
                "--traffic", "", "a first revision takes all traffic (omit --traffic)"
            )
        weights.insert(0, (others[-1].backend_service, 100 - req.traffic))
    own = _route(
        req.service, revision_prefix(req.service, req.revision), [(bundle.backend_service, 100)]
    )
    paths = api_paths(req.service, session.endpoints_service())
    switch = _route(req.service, model_prefix(req.service), weights)
    before = StackSpec(
        bundle.stack, bundle.resources, (own, paths) if others else (switch, own, paths)
    )
    return before, StackSpec(bundle.stack, bundle.resources, (switch, own, paths))


def check_unchanged(session: Session, before: StackSpec, req: DeployRequest) -> None:
    """A revision is immutable: redeploying it with other settings is refused in plain words
    (docs/decisions/0012)."""
    recorded = {r.key: r.spec for r in session.store.load().values() if r.stack == before.name}
    if not recorded:
        return
    changed = [
        spec.key for spec in before.resources if spec.key in recorded and spec != recorded[spec.key]
    ]
    if changed:
        raise ConfigError(
            "--revision",
            "",
            f"revision '{req.revision}' of '{req.service}' is already deployed with other "
            f"settings ({', '.join(k.kind for k in changed)} differ): a revision cannot change; "
            "deploy a new --revision",
        )


def deploy_direct(session: Session, req: DeployRequest) -> None:
    """Apply a revision as the caller instead of through the trigger. The model reserves the
    stack for the serving service account, so the engine refuses before any provider call; the
    PermissionDenied names the missing permissions and the trigger to use."""
    _, stack = deploy_stacks(session, req)
    session.engine().apply(DesiredState.of(frontend_stack(session), stack), session.principal)


def trigger_substitutions(req: DeployRequest) -> dict[str, str]:
    return {
        "_SERVICE": req.service,
        "_REVISION": req.revision,
        "_ARTIFACT": artifact_uri(req.artifact),
        "_TRAFFIC": str(req.traffic),
        "_MIN_REPLICAS": str(req.min_replicas),
        "_MAX_REPLICAS": str(req.max_replicas),
    }


def deploy(session: Session, req: DeployRequest, progress: Progress = print) -> DeployResult:
    """Run the `deploy` trigger for a revision (bad input is refused here, before the trigger
    runs); its build deploys it as the serving account (`deploy_step`)."""
    before, _ = deploy_stacks(session, req)
    check_unchanged(session, before, req)
    frontend_stack(session)  # a busy port fails here
    start = time.monotonic()
    build = run_trigger(session, "deploy", trigger_substitutions(req), progress)
    base = frontend_url(session)
    return DeployResult(
        build,
        base + model_prefix(req.service),
        base + revision_prefix(req.service, req.revision),
        time.monotonic() - start,
    )


def deploy_step(session: Session, req: DeployRequest, progress: Progress = print) -> str:
    """In the `deploy` build, as the serving account: create the front end if it is missing
    and the revision's resources with the revision's own route; wait until it answers through
    the load balancer; only then move the service route's traffic to it. (The serving account
    does not read the artifact bucket: the invoker's command checked a gs:// artifact, and each
    replica fetches it as serving-runtime.)"""
    before, after = deploy_stacks(session, req, read_artifact=False)
    check_unchanged(session, before, req)
    front = frontend_stack(session)
    apply_as(session, DesiredState.of(front, before), progress)
    url = frontend_url(session) + revision_prefix(req.service, req.revision)
    progress(f"waiting for {url}healthz")
    wait_for_200(url + "healthz", req.ready_timeout, session.platform.max_poll_interval)
    if after != before:
        progress(f"routing {req.traffic}% of {model_prefix(req.service)} to {req.revision}")
        apply_as(session, DesiredState.of(after), progress)
    return url


def undeploy_desired(session: Session, service: str, revision: str) -> DesiredState:
    revisions = recorded_revisions(session, service)
    target = next((r for r in revisions if r.revision == revision), None)
    if target is None:
        known = ", ".join(r.revision for r in revisions) or "none"
        raise ConfigError(
            "arguments",
            "--revision",
            f"no revision '{revision}' of '{service}' (deployed: {known})",
        )
    remaining = [r for r in revisions if r is not target]
    endpoints = session.endpoints_service()
    changes: tuple[Change, ...] = (
        DetachBackendService(url_map=URL_MAP, backend_service=target.backend_service.link),
        RemoveRoute(
            url_map=URL_MAP, path_matcher=PATH_MATCHER, prefix=revision_prefix(service, revision)
        ),
    )
    stacks = []
    if remaining:
        keep = remaining[-1]
        stacks.append(
            StackSpec(
                keep.stack,
                keep.resources,
                (_route(service, model_prefix(service), [(keep.backend_service, 100)]),),
            )
        )
    else:
        changes += (remove_api_paths(service, endpoints),)
    return DesiredState((StackSpec(target.stack, (), changes), *stacks))


def undeploy(session: Session, service: str, revision: str, progress: Progress = print) -> Build:
    """Run the `undeploy` trigger: its build removes the revision's routes, then its resources
    in reverse order; the service route moves to the newest remaining revision. Passive
    resources stay."""
    undeploy_desired(session, service, revision)  # an unknown revision fails here
    return run_trigger(session, "undeploy", {"_SERVICE": service, "_REVISION": revision}, progress)


def undeploy_step(
    session: Session, service: str, revision: str, progress: Progress = print
) -> None:
    apply_as(session, undeploy_desired(session, service, revision), progress)


def authorize_local_serving(session: Session) -> None:
    """`serve local`: a user serves a revision ad hoc as themselves; the model gives users the
    serving process's data reads ("both" actions), which the served model may use."""
    from mlplane.errors import PermissionDenied

    decision = session.authz.authorize(session.principal, "serving.read-storage")
    if not decision.allowed:
        raise PermissionDenied(decision.explain(), decision)


def recorded_forwarding_rule(session: Session) -> ForwardingRule | None:
    for rec in session.store.load().values():
        if isinstance(rec.spec, ForwardingRule):
            return rec.spec
    return None


def frontend_url(session: Session) -> str:
    """Where users reach the load balancer (the recorded forwarding rule's address)."""
    return session.platform.frontend_base(recorded_forwarding_rule(session))


def wait_for_200(url: str, timeout: float, most: float) -> None:
    """Ask `url` until it answers 200, more often the sooner (`poll_interval`)."""
    started = time.monotonic()
    deadline = started + timeout
    last = "no answer"
    while (now := time.monotonic()) < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(poll_interval(now - started, most))
    raise MlplaneError(f"{url} did not answer 200 within {timeout:.0f} s (last: {last})")


__all__ = [
    "DeployRequest",
    "DeployResult",
    "bootstrap",
    "bootstrap_step",
    "deploy",
    "deploy_direct",
    "deploy_step",
    "recorded_revisions",
    "undeploy",
    "undeploy_step",
]
