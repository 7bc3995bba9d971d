"""`train list` and `notebook list`: the training and notebook VMs the team state records, with
their state, on the start-up path of everyday commands (issue 11: within 3x `python -c pass`).

As `mlplane status` (decision 0017): the state store is read without decoding specs (the
instances' labels come from their JSON), the local agent is asked once for what it runs, and a
notebook's JupyterLab once for its activity; no pydantic, dataclasses, pathlib or http.client.
The local provider only: on `gcp` (or with no agent running) the callers ask the Compute API
(`training.list_runs`, `notebooks.list_notebooks`), which share the helpers here.
"""

from __future__ import annotations

import os

from mlplane.model.value import Value

TYPE_CHECKING = False  # as typing's, without importing typing
if TYPE_CHECKING:
    from typing import Any

    from mlplane.providers.replica_view import AgentView

TRAINING_PREFIX = "training/"
NOTEBOOK_PREFIX = "notebooks/"
ACTIVE = ("RUNNING", "STAGING", "PROVISIONING")  # Compute statuses of a VM that runs


class TrainingRun(Value):
    """state: RUNNING (the job runs), EXITED (the job ended, the VM was not deleted), GONE."""

    __slots__ = ("instance", "spec", "owner", "state", "exit_code", "log")
    instance: str
    spec: str
    owner: str
    state: str
    exit_code: int | None
    log: str

    def __init__(
        self, instance: str, spec: str, owner: str, state: str, exit_code: int | None, log: str
    ) -> None:
        self._set(
            instance=instance, spec=spec, owner=owner, state=state, exit_code=exit_code, log=log
        )

    def to_json(self) -> dict[str, Any]:
        return self.fields()


class NotebookInfo(Value):
    """state: RUNNING (JupyterLab answers), STARTING, STOPPED (idle stop, exit or gone); `url`
    carries the token (for the owner, who holds the token file)."""

    __slots__ = ("name", "instance", "owner", "state", "url", "port", "created", "idle_seconds")
    name: str
    instance: str
    owner: str
    state: str
    url: str
    port: int | None
    created: float
    idle_seconds: float | None

    def __init__(
        self,
        name: str,
        instance: str,
        owner: str,
        state: str,
        url: str,
        port: int | None,
        created: float,
        idle_seconds: float | None,
    ) -> None:
        self._set(
            name=name,
            instance=instance,
            owner=owner,
            state=state,
            url=url,
            port=port,
            created=created,
            idle_seconds=idle_seconds,
        )

    def to_json(self) -> dict[str, Any]:
        return self.fields()


# ---------------------------------------------------------------- shared with the API path


def state_dir(project_file: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(project_file)), ".mlplane")


def log_path(state: str, instance: str) -> str:
    """The VM's raw log (what its runner and job wrote), kept after the VM is gone."""
    return os.path.join(state, "agent", "logs", f"{instance}.log")


def exit_code(state: str, instance: str) -> int | None:
    """The job's exit code, from the runner's last word in the VM's log (None: not ended)."""
    try:
        with open(log_path(state, instance), errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("mlplane-training: job exited rc="):
            return int(line.split("rc=")[1].split()[0])
        if line.startswith("mlplane-training: job could not start"):
            return 127
    return None


def registry(state: str) -> str:
    return os.path.join(state, "training", "runs.jsonl")


def registered(state: str) -> dict[str, dict[str, str]]:
    """instance -> {spec, owner} of every run started from this project directory."""
    from mlplane import jsonread

    try:
        with open(registry(state)) as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        try:
            entry = jsonread.loads(line)
            out[str(entry["instance"])] = {"spec": str(entry["spec"]), "owner": str(entry["owner"])}
        except (ValueError, KeyError, TypeError):
            continue
    return out


def training_run(
    state: str, instance: str, labels: dict[str, str], known: dict[str, str], vm_state: str
) -> TrainingRun:
    return TrainingRun(
        instance,
        labels.get("mlplane-spec") or known.get("spec", "?"),
        labels.get("mlplane-owner") or known.get("owner", "?"),
        vm_state,
        exit_code(state, instance),
        log_path(state, instance),
    )


def notebook_token(state: str, instance: str) -> str | None:
    try:
        with open(os.path.join(state, "notebooks", instance, "token")) as f:
            return f.read().strip()
    except OSError:
        return None


def notebook_info(
    state: str, instance: str, labels: dict[str, str], created: float, vm: str, endpoint: str
) -> NotebookInfo:
    """A notebook's row from its VM's Compute status and the endpoint its guest publishes."""
    token = notebook_token(state, instance) or ""
    port = int(endpoint.rpartition(":")[2]) if endpoint else None
    api = jupyter_status(port, token) if port else None
    status = "RUNNING" if api else ("STARTING" if vm in ACTIVE else "STOPPED")
    return NotebookInfo(
        labels.get("mlplane-notebook", instance),
        instance,
        labels.get("mlplane-owner", "?"),
        status,
        f"http://{endpoint}/lab?token={token}" if endpoint else "",
        port,
        created,
        idle_seconds(api) if api else None,
    )


def jupyter_status(port: int, token: str) -> dict[str, object] | None:
    """JupyterLab's `/api/status` (its last activity), or None when it does not answer."""
    from mlplane.apis.loopback import LoopbackError, get_json

    try:
        code, body = get_json(port, "/api/status", f"token {token}", 2.0, "JupyterLab")
    except LoopbackError:
        return None
    return body if code == 200 and isinstance(body, dict) else None


def idle_seconds(status: dict[str, object]) -> float | None:
    import time
    from datetime import datetime

    last = status.get("last_activity")
    if not isinstance(last, str):
        return None
    try:
        return max(
            0.0, time.time() - datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp()
        )
    except ValueError:
        return None


# ---------------------------------------------------------------- the local start-up path


def _recorded_instances(project_file: str, prefix: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, last write) of the recorded instances of stacks named `prefix...`."""
    from mlplane import jsonread
    from mlplane.workflows.status import recorded, state_path

    out = []
    for rec in recorded(state_path(project_file, "local"), ("instance",)):
        if rec.kind != "instance" or not rec.stack.startswith(prefix):
            continue
        try:
            labels = jsonread.loads(rec.spec).get("labels") or {}
        except (ValueError, AttributeError):
            labels = {}
        out.append((rec.name, {str(k): str(v) for k, v in labels.items()}, rec.updated_at))
    return out


def _local_view(project_file: str) -> AgentView | None:
    """What the local agent runs, or None when this is not the local provider or no agent
    runs (the callers then ask the Compute API)."""
    from mlplane.iam.compiled import project_and_provider
    from mlplane.workflows import compose

    if project_and_provider(project_file)[1] != "local":  # also validates the project file
        return None
    return compose.local_processes(project_file)


def _vm_status(view: AgentView, instance: str) -> str:
    """The VM's Compute status as `instances.get` would give it (GONE: not found)."""
    if not view.holds("instance", instance):
        return "GONE"
    proc = next((p for p in view.processes if p.name == instance and not p.group), None)
    return proc.status if proc is not None else "TERMINATED"


def training_runs(project_file: str) -> list[TrainingRun] | None:
    """The training VMs recorded or started here, from the local agent (None: ask the API)."""
    view = _local_view(project_file)
    if view is None:
        return None
    state = state_dir(project_file)
    instances = _recorded_instances(project_file, TRAINING_PREFIX)
    recorded = {name: labels for name, labels, _ in instances}
    known = registered(state)
    out = []
    for name in sorted(set(recorded) | set(known)):
        vm = _vm_status(view, name)
        run_state = "GONE" if vm == "GONE" else ("RUNNING" if vm in ACTIVE else "EXITED")
        labels = recorded.get(name, {})
        out.append(training_run(state, name, labels, known.get(name, {}), run_state))
    return out


def notebooks(project_file: str) -> list[NotebookInfo] | None:
    """The recorded notebook VMs, from the local agent (None: ask the API)."""
    view = _local_view(project_file)
    if view is None:
        return None
    state = state_dir(project_file)
    out = []
    for name, labels, created in _recorded_instances(project_file, NOTEBOOK_PREFIX):
        vm = _vm_status(view, name)
        proc = next((p for p in view.processes if p.name == name and not p.group), None)
        endpoint = f"127.0.0.1:{proc.port}" if vm == "RUNNING" and proc and proc.port else ""
        out.append(notebook_info(state, name, labels, created, vm, endpoint))
    return sorted(out, key=lambda n: n.instance)
