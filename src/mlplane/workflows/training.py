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
from mlplane.model.compute import (
    AttachedDisk,
    AttachedDiskInitializeParams,
    Instance,
    Metadata,
    MetadataItem,
    Scheduling,
    ServiceAccount,
)
from mlplane.model.principals import Principal
from mlplane.model.secret_refs import command_prefix
from mlplane.model.training import TrainingSpec
from mlplane.model.workload import workload_metadata
from mlplane.workflows import instance_lists as L
from mlplane.workflows.instance_lists import TrainingRun
from mlplane.workflows.process_image import process_image
from mlplane.workflows.session import Session, owner_label

BOOT_IMAGE = "projects/cos-cloud/global/images/family/cos-stable"

Progress = Callable[[str], None]
STACK_PREFIX = L.TRAINING_PREFIX


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
    session: Session, spec: TrainingSpec, spec_dir: Path, output: Path | None = None
) -> tuple[int, Path]:
    """Run the job here, as the signed-in user (the job's data SDK finds that identity the way
    Google's libraries find credentials); outputs go to `output` (a new or empty directory)
    or a scratch directory; never to the bucket."""
    if output is None:
        run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        out = session.state_dir / "scratch" / "train" / f"{spec.name}-{run_id}"
    else:
        out = output.resolve()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ConfigError(
                "argument", "--output", f"{output} exists and is not an empty directory"
            )
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {**os.environ, **spec.env, **job_secrets(session, spec), "MLPLANE_OUTPUT_DIR": str(out)}
    env["MLPLANE_PROJECT"] = str(session.project_file)
    code = subprocess.run(spec.argv(sys.executable, str(out), str(spec_dir)), env=env).returncode
    return code, out


def job_secrets(session: Session, spec: TrainingSpec) -> dict[str, str]:
    """The spec's secret references resolved as this process's identity (the signed-in user, or
    a build's service account), for the job's environment only."""
    if not spec.secrets:
        return {}
    from mlplane.data.secrets.env import resolve
    from mlplane.data.secrets.service import open_secrets

    return resolve(spec.secrets, open_secrets(session.project_file))


@dataclass(frozen=True)
class RemoteRun:
    instance: str
    stack: str
    service_account: str


def training_instance(
    session: Session, spec: TrainingSpec, spec_dir: Path, owner: Principal
) -> Instance:
    name = f"train-{spec.name}-{secrets.token_hex(3)}"
    # The VM's own disk (locally: owner-only under the agent's state); nothing is persisted
    # from it.
    out = str(session.state_dir / "agent" / "workloads" / name / "output")
    job = spec.argv("python", out, str(spec_dir.resolve()))
    # The job's output becomes Cloud Logging-shaped entries written as the VM's own identity
    # (training-adhoc holds logging.logEntries.create); --tee keeps the raw log beside them.
    logged = ["python", "-m", "mlplane.data.logs.pipe", "--resource", name, "--tee", "--"]
    # Secrets by reference: the VM resolves them as its own identity when the job starts.
    secret_env = command_prefix(spec.secrets)
    secret_env += ["--"] if secret_env else []
    command = ["python", "-m", "mlplane.training.runner", "--", *logged, *secret_env, *job]
    image = process_image(session, "training")  # the training image, when it is built
    items = workload_metadata(command, {**spec.env, "MLPLANE_OUTPUT_DIR": out}, image=image)
    items["mlplane-spec"] = spec.name
    return Instance(
        name=name,
        zone=session.zone,
        machine_type=spec.machine_type,
        disks=(
            AttachedDisk(
                boot=True,
                initialize_params=AttachedDiskInitializeParams(source_image=BOOT_IMAGE),
            ),
        ),
        service_accounts=(ServiceAccount(email=session.email("training-adhoc")),),
        metadata=Metadata(
            items=tuple(MetadataItem(key=k, value=v) for k, v in sorted(items.items()))
        ),
        # A training VM deletes itself when its job ends; if its host fails first it stays
        # TERMINATED (its log kept) for `train list` and `train reap`, never re-running a job.
        scheduling=Scheduling(automatic_restart=False),
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
    progress: Progress = print,
) -> RemoteRun:
    """Create the training VM as the caller (the model's `training.create-instances`); it runs
    as `training-adhoc` and deletes itself when the job ends."""
    user = session.principal
    instance = training_instance(session, spec, spec_dir, user)
    stack = STACK_PREFIX + instance.name
    report = session.engine().apply(DesiredState.of(StackSpec(stack, (instance,))), user)
    report.raise_for_failures()
    _register(session, instance.name, spec.name, owner_label(user))
    progress(f"training VM {instance.name} runs as {session.email('training-adhoc')}")
    return RemoteRun(instance.name, stack, session.email("training-adhoc"))


def _register(session: Session, instance: str, spec: str, owner: str) -> None:
    """Append a run to the project's registry (one O_APPEND write: safe across processes)."""
    import json

    path = Path(L.registry(str(session.state_dir)))
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"instance": instance, "spec": spec, "owner": owner, "at": time.time()})
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def log_path(session: Session, instance: str) -> Path:
    return Path(L.log_path(str(session.state_dir), instance))


def exit_code(session: Session, instance: str) -> int | None:
    """The job's exit code, from the runner's last word in the VM's log (None: not ended)."""
    return L.exit_code(str(session.state_dir), instance)


def instance_exists(session: Session, instance: str) -> bool:
    """Whether the VM still exists (`instances.get` as the caller)."""
    from mlplane.providers.errors import NotFound

    params = {"project": session.project_id, "zone": session.zone, "instance": instance}
    try:
        session.api.call("compute.instances.get", params)
    except NotFound:
        return False
    return True


def wait(session: Session, run: RemoteRun, timeout: float) -> int:
    """Wait until the VM has deleted itself; return the job's exit code; forget its record."""
    deadline = time.monotonic() + timeout
    while instance_exists(session, run.instance):
        if time.monotonic() > deadline:
            raise MlplaneError(f"{run.instance} still exists after {timeout:.0f} s")
        time.sleep(0.1)
    forget(session, run.stack)
    code = exit_code(session, run.instance)
    return 1 if code is None else code


def forget(session: Session, stack: str) -> None:
    """Destroy a training stack as the caller: the engine sees the VM already gone and only
    drops its record (or deletes it, when it is still there: `train cancel`)."""
    report = session.engine().apply(DesiredState.destroy([stack]), session.principal)
    report.raise_for_failures()


def instance_state(session: Session, instance: str) -> str:
    """RUNNING (the job runs), EXITED (the job ended but the VM was not deleted), or GONE."""
    from mlplane.providers.errors import NotFound

    params = {"project": session.project_id, "zone": session.zone, "instance": instance}
    try:
        body = session.api.call("compute.instances.get", params)
    except NotFound:
        return "GONE"
    return "RUNNING" if body.get("status") in ("RUNNING", "STAGING", "PROVISIONING") else "EXITED"


def list_runs(session: Session) -> list[TrainingRun]:
    """The training VMs recorded or started here, each VM's state asked of the Compute API as
    the caller (`instance_lists.training_runs` is the local start-up path of `train list`)."""
    recorded = {
        rec.key.name: rec.spec
        for rec in session.store.load().values()
        if rec.stack.startswith(STACK_PREFIX) and isinstance(rec.spec, Instance)
    }
    state = str(session.state_dir)
    known = L.registered(state)
    out = []
    for name in sorted(set(recorded) | set(known)):
        spec = recorded.get(name)
        labels = (spec.labels if spec else None) or {}
        vm = instance_state(session, name)
        out.append(L.training_run(state, name, dict(labels), known.get(name, {}), vm))
    return out


def cancel(session: Session, instance: str) -> None:
    """Delete a training VM (its owner only: the developer shuts down their own VMs)."""
    forget(session, cancel_target(session, instance))


def cancel_target(session: Session, instance: str) -> str:
    """The training stack `cancel` destroys; ConfigError or PermissionDenied (not the owner)
    before anything is sent."""
    runs = {r.instance: r for r in list_runs(session)}
    run = runs.get(instance)
    if run is None:
        known = ", ".join(sorted(runs)) or "none"
        raise ConfigError("argument", "INSTANCE", f"no training VM '{instance}' (known: {known})")
    if run.state == "GONE" and STACK_PREFIX + instance not in {
        r.stack for r in session.store.load().values()
    }:
        raise ConfigError("argument", "INSTANCE", f"training VM '{instance}' is already gone")
    if run.owner != owner_label(session.principal):
        from mlplane.errors import PermissionDenied

        raise PermissionDenied(f"{instance} belongs to '{run.owner}': only its owner cancels it")
    return STACK_PREFIX + instance


def reap(session: Session) -> list[str]:
    """Remove the caller's training VMs whose job is gone (self-deleted, or exited without
    deleting itself, e.g. a runner killed with -9): nothing leaks."""
    reaped = []
    for instance in reapable(session):
        forget(session, STACK_PREFIX + instance)
        reaped.append(instance)
    return reaped


def reapable(session: Session) -> list[str]:
    """The caller's training VMs whose job is gone and whose stack is recorded or VM left."""
    recorded = {r.stack for r in session.store.load().values()}
    me = owner_label(session.principal)
    return [
        run.instance
        for run in list_runs(session)
        if run.state != "RUNNING"
        and run.owner == me
        and (STACK_PREFIX + run.instance in recorded or run.state == "EXITED")
    ]


@dataclass(frozen=True)
class PersistedRun:
    build_id: str
    prefix: str  # gs://BUCKET/NAME/BUILD/
    objects: tuple[tuple[str, int, str, str], ...]  # (uri, size, md5Hash, crc32c)
    source: str = ""


def spec_in_source(session: Session, spec_path: Path) -> str:
    """The spec's path relative to the project directory: the `train` build runs code from the
    project's recorded source, so the spec must be part of it."""
    root = session.project_file.parent
    try:
        return spec_path.resolve().relative_to(root).as_posix()
    except ValueError:
        raise ConfigError(
            str(spec_path), "",
            f"the `train` trigger runs code from the project's source ({root}): the spec must "
            "be inside that directory",
        ) from None  # fmt: skip


def run_ci(session: Session, spec_path: Path, progress: Progress = print) -> PersistedRun:
    """Run the CI trigger `train`: its build runs the spec from the project's recorded source
    as the training service account and persists the job's outputs to the artifact bucket."""
    from mlplane.workflows.ci import run_trigger

    spec = load_spec(spec_path)  # bad input fails here, before the trigger runs
    relative = spec_in_source(session, spec_path)
    build = run_trigger(session, "train", {"_SPEC": relative}, progress)
    objects = tuple((o.uri, o.size, o.md5_hash, o.crc32c) for o in build.objects)
    return PersistedRun(
        build.id, artifact_prefix(session, spec.name, build.id), objects, build.source
    )


def artifact_prefix(session: Session, spec_name: str, build_id: str) -> str:
    """Where the `train` build `build_id` persists a spec's outputs."""
    project = session.loaded.project
    return f"gs://{project.resolve(project.resources.buckets['artifacts'])}/{spec_name}/{build_id}/"


def train_step(session: Session, spec_path: Path, progress: Progress = print) -> PersistedRun:
    """In the `train` build, as the training service account: run the job from the build's
    source, then persist its outputs, with their checksums, to the artifact bucket under
    `gs://BUCKET/SPEC/BUILD_ID/`."""
    from mlplane.data.artifacts import ArtifactStore

    spec = load_spec(spec_path)
    build_id = os.environ.get("BUILD_ID") or time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    out = Path.cwd() / ".mlplane-output"
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {**os.environ, **spec.env, **job_secrets(session, spec), "MLPLANE_OUTPUT_DIR": str(out)}
    env["MLPLANE_PROJECT"] = str(session.project_file)
    progress(f"running {spec.name} as {session.principal}")
    code = subprocess.run(
        spec.argv(sys.executable, str(out), str(spec_path.parent.resolve())), env=env
    ).returncode
    if code != 0:
        raise MlplaneError(f"training job {spec.name} exited {code}; nothing persisted")
    store = ArtifactStore.open(session.project_file)
    prefix = artifact_prefix(session, spec.name, build_id)
    objects = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        meta = store.upload(path, prefix + path.relative_to(out).as_posix(), if_generation_match=0)
        uri = f"gs://{meta.bucket}/{meta.name}"
        objects.append((uri, meta.size, meta.md5_hash, meta.crc32c))
        progress(f"persisted {uri} md5 {meta.md5_hash} crc32c {meta.crc32c}")
    return PersistedRun(build_id, prefix, tuple(objects))
