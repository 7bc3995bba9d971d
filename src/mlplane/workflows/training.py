"""Training runs: local (as the user, outputs to scratch) and remote (a training VM that runs as
the ad-hoc training identity and deletes itself when its job ends).

Artifact-producing runs go through the CI trigger `train`, as the training service account;
neither a local nor a remote ad-hoc run can persist to the artifact bucket (the model says so,
and the data SDK enforces it for the acting principal).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlplane.engine.desired import DesiredState, StackSpec
from mlplane.errors import ConfigError, MlplaneError
from mlplane.iam.loading import parse_model, read_toml
from mlplane.model.compute import Instance, Metadata, MetadataItem, ServiceAccount
from mlplane.model.principals import Principal
from mlplane.model.training import TrainingSpec
from mlplane.providers.local.runtime import runtime_metadata
from mlplane.workflows.session import Session, owner_label

Progress = Callable[[str], None]
STACK_PREFIX = "training/"


def load_spec(path: Path) -> TrainingSpec:
    """Read a training spec; ConfigError names the file and the field on bad input."""
    spec = parse_model(TrainingSpec, read_toml(path), str(path))
    if spec.entrypoint.endswith(".py") and not (path.parent / spec.entrypoint).is_file():
        raise ConfigError(str(path), "entrypoint", f"no script '{spec.entrypoint}' beside the spec")
    if not spec.entrypoint.endswith(".py"):
        import importlib.util

        try:
            found = importlib.util.find_spec(spec.entrypoint) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigError(str(path), "entrypoint", f"no Python module '{spec.entrypoint}'")
    return spec


def run_local(
    session: Session, spec: TrainingSpec, spec_dir: Path, user: Principal
) -> tuple[int, Path]:
    """Run the job here, as `user`; outputs go to a scratch directory (never the bucket)."""
    run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    out = session.state_dir / "scratch" / "train" / f"{spec.name}-{run_id}"
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **spec.env, "MLPLANE_PRINCIPAL": str(user), "MLPLANE_OUTPUT_DIR": str(out)}
    env["MLPLANE_PROJECT"] = str(session.project_file)
    code = subprocess.run(spec.argv(sys.executable, str(out), str(spec_dir)), env=env).returncode
    return code, out


@dataclass(frozen=True)
class RemoteRun:
    instance: str
    stack: str
    service_account: str


def training_instance(
    session: Session, spec: TrainingSpec, spec_dir: Path, owner: Principal
) -> Instance:
    name = f"train-{spec.name}-{secrets.token_hex(3)}"
    out = f"/tmp/mlplane-train/{name}"  # the VM's own disk; nothing is persisted from it
    job = spec.argv(sys.executable, out, str(spec_dir.resolve()))
    # The job's output becomes Cloud Logging-shaped entries written as the VM's own identity
    # (training-adhoc holds logging.logEntries.create); --tee keeps the raw log beside them.
    logged = [sys.executable, "-m", "mlplane.data.logs.pipe", "--resource", name, "--tee", "--"]
    command = [sys.executable, "-m", "mlplane.training.runner", "--", *logged, *job]
    items = runtime_metadata(command, {**spec.env, "MLPLANE_OUTPUT_DIR": out})
    items["mlplane-spec"] = spec.name
    return Instance(
        name=name,
        zone=session.zone,
        machine_type=spec.machine_type,
        service_accounts=(ServiceAccount(email=session.email("training-adhoc")),),
        metadata=Metadata(
            items=tuple(MetadataItem(key=k, value=v) for k, v in sorted(items.items()))
        ),
        labels={
            "mlplane-kind": "training",
            "mlplane-owner": owner_label(owner),
            "mlplane-spec": spec.name,
        },
    )


def run_remote(
    session: Session,
    spec: TrainingSpec,
    spec_dir: Path,
    user: Principal,
    progress: Progress = print,
) -> RemoteRun:
    """Create the training VM as `user` (the model's `training.create-instances`); it runs as
    `training-adhoc` and deletes itself when the job ends."""
    instance = training_instance(session, spec, spec_dir, user)
    stack = STACK_PREFIX + instance.name
    report = session.engine(user).apply(DesiredState.of(StackSpec(stack, (instance,))), user)
    report.raise_for_failures()
    _register(session, instance.name, spec.name, owner_label(user))
    progress(f"training VM {instance.name} runs as {session.email('training-adhoc')}")
    return RemoteRun(instance.name, stack, session.email("training-adhoc"))


def _registry(session: Session) -> Path:
    return session.state_dir / "training" / "runs.jsonl"


def _register(session: Session, instance: str, spec: str, owner: str) -> None:
    """Append a run to the project's registry (one O_APPEND write: safe across processes)."""
    import json

    path = _registry(session)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"instance": instance, "spec": spec, "owner": owner, "at": time.time()})
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _registered(session: Session) -> dict[str, dict[str, str]]:
    import json

    try:
        lines = _registry(session).read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        try:
            entry = json.loads(line)
            out[str(entry["instance"])] = {"spec": str(entry["spec"]), "owner": str(entry["owner"])}
        except (ValueError, KeyError, TypeError):
            continue
    return out


def log_path(session: Session, instance: str) -> Path:
    return session.state_dir / "agent" / "logs" / f"{instance}.log"


def exit_code(session: Session, instance: str) -> int | None:
    """The job's exit code, from the runner's last word in the VM's log (None: not ended)."""
    try:
        lines = log_path(session, instance).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("mlplane-training: job exited rc="):
            return int(line.split("rc=")[1].split()[0])
        if line.startswith("mlplane-training: job could not start"):
            return 127
    return None


def instance_exists(session: Session, instance: str) -> bool:
    from mlplane.providers.local.control import find_agent

    handle = find_agent(session.project_file)
    if handle is None:
        raise MlplaneError("the local agent is not running: start it with `mlplane up`")
    return any(
        r.kind == "instance" and r.name == instance for r in handle.client().status().resources
    )


def wait(session: Session, run: RemoteRun, owner: Principal, timeout: float) -> int:
    """Wait until the VM has deleted itself; return the job's exit code; forget its record."""
    deadline = time.monotonic() + timeout
    while instance_exists(session, run.instance):
        if time.monotonic() > deadline:
            raise MlplaneError(f"{run.instance} still exists after {timeout:.0f} s")
        time.sleep(0.1)
    forget(session, run.stack, owner)
    code = exit_code(session, run.instance)
    return 1 if code is None else code


def forget(session: Session, stack: str, owner: Principal) -> None:
    """Destroy a training stack as its owner: the engine sees the VM already gone and only drops
    its record (or deletes it, when it is still there: `train cancel`)."""
    session.engine(owner).apply(DesiredState.destroy([stack]), owner).raise_for_failures()


@dataclass(frozen=True)
class TrainingRun:
    instance: str
    spec: str
    owner: str
    state: str  # RUNNING, EXITED (job gone, VM not deleted), GONE (deleted)
    exit_code: int | None
    log: str


def list_runs(session: Session) -> list[TrainingRun]:
    from mlplane.providers.local.control import find_agent

    handle = find_agent(session.project_file)
    live = {}
    if handle is not None:
        status = handle.client().status()
        procs = {r.name: r for r in status.replicas}
        for r in status.resources:
            if r.kind == "instance" and r.name.startswith("train-"):
                proc = procs.get(r.name)
                live[r.name] = (r, "RUNNING" if proc and proc.status == "RUNNING" else "EXITED")
    recorded = {
        rec.key.name: rec.spec
        for rec in session.store.load().values()
        if rec.stack.startswith(STACK_PREFIX) and isinstance(rec.spec, Instance)
    }
    registered = _registered(session)
    out = []
    for name in sorted(set(live) | set(recorded) | set(registered)):
        spec = recorded.get(name)
        labels = (spec.labels if spec else None) or {}
        known = registered.get(name, {})
        state = live[name][1] if name in live else "GONE"
        out.append(
            TrainingRun(
                name,
                labels.get("mlplane-spec") or known.get("spec", "?"),
                labels.get("mlplane-owner") or known.get("owner", "?"),
                state,
                exit_code(session, name),
                str(log_path(session, name)),
            )
        )
    return out


def cancel(session: Session, instance: str, user: Principal) -> None:
    """Delete a training VM (its owner only: the developer shuts down their own VMs)."""
    runs = {r.instance: r for r in list_runs(session)}
    run = runs.get(instance)
    if run is None:
        raise ConfigError("argument", "INSTANCE", f"no training VM '{instance}'")
    if run.owner != owner_label(user):
        from mlplane.errors import PermissionDenied

        raise PermissionDenied(f"{instance} belongs to '{run.owner}': only its owner cancels it")
    forget(session, STACK_PREFIX + instance, user)


def reap(session: Session, user: Principal) -> list[str]:
    """Remove `user`'s training VMs whose job is gone (self-deleted, or exited without deleting
    itself, e.g. a runner killed with -9): nothing leaks."""
    reaped = []
    recorded = {r.stack for r in session.store.load().values()}
    for run in list_runs(session):
        stack = STACK_PREFIX + run.instance
        if (
            run.state != "RUNNING"
            and run.owner == owner_label(user)
            and (stack in recorded or run.state == "EXITED")
        ):
            forget(session, stack, user)
            reaped.append(run.instance)
    return reaped


@dataclass(frozen=True)
class PersistedRun:
    build_id: str
    prefix: str  # gs://BUCKET/NAME/BUILD/
    objects: tuple[tuple[str, int, str, str], ...]  # (uri, size, md5Hash, crc32c)


def run_ci(
    session: Session,
    spec: TrainingSpec,
    spec_dir: Path,
    invoker: Principal,
    progress: Progress = print,
) -> PersistedRun:
    """The CI trigger `train`: run the job as the training service account (the build worker is
    this machine) and persist its outputs, with their checksums, to the artifact bucket."""
    from mlplane.data.artifacts import ArtifactStore
    from mlplane.workflows.ci import run_trigger

    bucket = session.loaded.project.resolve(session.loaded.project.resources.buckets["artifacts"])

    def pipeline(runs_as: Principal) -> PersistedRun:
        run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        out = session.state_dir / "builds" / "train" / run_id
        out.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **spec.env, "MLPLANE_PRINCIPAL": str(runs_as)}
        env.update({"MLPLANE_OUTPUT_DIR": str(out), "MLPLANE_PROJECT": str(session.project_file)})
        progress(f"trigger 'train' running {spec.name} as {runs_as}")
        code = subprocess.run(
            spec.argv(sys.executable, str(out), str(spec_dir)), env=env
        ).returncode
        if code != 0:
            raise MlplaneError(f"training job {spec.name} exited {code}; nothing persisted")
        store = ArtifactStore.open(session.project_file, runs_as)
        prefix = f"gs://{bucket}/{spec.name}/{run_id}/"
        objects = []
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            meta = store.upload(
                path, prefix + path.relative_to(out).as_posix(), if_generation_match=0
            )
            objects.append(
                (f"gs://{meta.bucket}/{meta.name}", meta.size, meta.md5_hash, meta.crc32c)
            )
            uri = f"gs://{meta.bucket}/{meta.name}"
            progress(f"  persisted {uri} md5 {meta.md5_hash} crc32c {meta.crc32c}")
        return PersistedRun(run_id, prefix, tuple(objects))

    build, result = run_trigger(session, "train", invoker, pipeline, {"spec": spec.name})
    return PersistedRun(build.id, result.prefix, result.objects)
