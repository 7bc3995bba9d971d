"""Notebooks (experimentation): a JupyterLab server on a notebook VM that runs as the
experimentation service account, created, listed and deleted by its owner.

The token is kept in a 0600 file beside the project's state (locally; on GCP an access proxy
in front of the VM plays that part); the URL that `list` prints carries it for the owner only.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mlplane.engine.desired import DesiredState, StackSpec
from mlplane.errors import ConfigError, MlplaneError, PermissionDenied
from mlplane.model.compute import (
    AttachedDisk,
    AttachedDiskInitializeParams,
    Instance,
    Metadata,
    MetadataItem,
    ServiceAccount,
)
from mlplane.model.principals import Principal
from mlplane.model.workload import workload_metadata
from mlplane.workflows.session import Session, owner_label

BOOT_IMAGE = "projects/cos-cloud/global/images/family/cos-stable"
READY_TIMEOUT = 90.0

STACK_PREFIX = "notebooks/"
_NAME = re.compile(r"[a-z]([-a-z0-9]{0,28}[a-z0-9])?")


def owner_slug(principal: Principal) -> str:
    local = principal.email.partition("@")[0].lower()
    slug = re.sub(r"[^a-z0-9]+", "-", local).strip("-")
    return (slug or "user")[:20].rstrip("-")


def instance_name(name: str, owner: Principal) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(
            "argument", "NAME", f"'{name}' must be 1-30 lowercase letters, digits or dashes"
        )
    return f"nb-{owner_slug(owner)}-{name}"


def _dir(session: Session, instance: str) -> Path:
    return session.state_dir / "notebooks" / instance


def token_of(session: Session, instance: str) -> str | None:
    try:
        return (_dir(session, instance) / "token").read_text().strip()
    except OSError:
        return None


@dataclass(frozen=True)
class NotebookInfo:
    name: str
    instance: str
    owner: str
    state: str  # RUNNING, STOPPED (idle stop or exit), STARTING
    url: str  # with the token, for the owner
    port: int | None
    created: float
    idle_seconds: float | None


def _authorize_create(session: Session, user: Principal, instance: str) -> None:
    """Refuse, before anything is written (the token file), a caller the model would refuse
    (on the VM itself: the grant holds only on notebook VMs, `nb-*`)."""
    from mlplane.errors import PermissionDenied
    from mlplane.model.refs import ResourceRef

    ref = ResourceRef("instance", instance, session.project_id)
    decision = session.authz.authorize(user, "experimentation.create-instances", ref)
    if not decision.allowed:
        raise PermissionDenied(decision.explain(), decision)


def create(session: Session, name: str, machine_type: str = "e2-standard-4") -> NotebookInfo:
    """Create the notebook VM as the caller (the model's `experimentation.create-instances`,
    with actAs on the experimentation service account) and wait until JupyterLab answers."""
    user = session.principal
    iname = check_create(session, name, user)
    directory = _dir(session, iname)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(directory / "token", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(24))
    desired = create_desired(session, name, machine_type, user)
    session.engine().apply(desired, user).raise_for_failures()
    return _wait_running(session, iname)


def check_create(session: Session, name: str, user: Principal) -> str:
    """The notebook's instance name, once the name is valid, the model lets `user` create it
    and JupyterLab is installed (before anything is written or sent)."""
    iname = instance_name(name, user)
    _authorize_create(session, user, iname)
    _require_jupyterlab()
    return iname


def create_desired(session: Session, name: str, machine_type: str, user: Principal) -> DesiredState:
    """The notebook's stack: its VM, whose workload reads its token from a file beside the
    project's state (the token itself is in no request)."""
    iname = instance_name(name, user)
    directory = _dir(session, iname)
    token_file = directory / "token"
    idle = session.loaded.project.notebooks.idle_timeout_minutes * 60
    env = {
        "MLPLANE_NOTEBOOK_TOKEN_FILE": str(token_file),
        "MLPLANE_NOTEBOOK_DIR": str(directory),
        "MLPLANE_NOTEBOOK_IDLE_SEC": str(idle),
    }
    items = workload_metadata(["python", "-m", "mlplane.notebook.launcher"], env)
    instance = Instance(
        name=iname,
        zone=session.zone,
        machine_type=machine_type,
        disks=(
            AttachedDisk(
                boot=True,
                initialize_params=AttachedDiskInitializeParams(source_image=BOOT_IMAGE),
            ),
        ),
        service_accounts=(ServiceAccount(email=session.email("experimentation")),),
        metadata=Metadata(
            items=tuple(MetadataItem(key=k, value=v) for k, v in sorted(items.items()))
        ),
        labels={
            "mlplane-kind": "notebook",
            "mlplane-owner": owner_label(user),
            "mlplane-notebook": name,
        },
    )
    return DesiredState.of(StackSpec(STACK_PREFIX + iname, (instance,)))


def _wait_running(session: Session, iname: str) -> NotebookInfo:
    deadline = time.monotonic() + READY_TIMEOUT
    info = None
    while time.monotonic() < deadline:
        info = next((n for n in list_notebooks(session) if n.instance == iname), None)
        if info is not None and info.state == "RUNNING":
            return info
        if info is not None and info.state == "STOPPED":
            break
        time.sleep(0.25)
    raise MlplaneError(
        f"notebook {iname} did not start ({info.state if info else 'no instance'}); its log: "
        f"{session.state_dir / 'agent' / 'logs' / (iname + '.log')}"
    )


def _require_jupyterlab() -> None:
    import importlib.util

    if importlib.util.find_spec("jupyterlab") is None:
        raise MlplaneError(
            "notebooks need JupyterLab, which is not installed: pip install 'mlplane[notebook]'"
        )


def _api_status(port: int, token: str) -> dict[str, object] | None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            data: dict[str, object] = json.loads(resp.read())
            return data
    except (OSError, ValueError):
        return None


def _idle(status: dict[str, object]) -> float | None:
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


def _endpoint(session: Session, instance: str) -> tuple[str, str | None]:
    """(status, HOST:PORT) of a notebook VM: its Compute status, and the endpoint its guest
    agent publishes as the guest attribute `mlplane/endpoint` (GONE when it does not exist)."""
    from mlplane.providers.errors import NotFound

    params = {"project": session.project_id, "zone": session.zone, "instance": instance}
    try:
        body = session.api.call("compute.instances.get", params)
    except NotFound:
        return "GONE", None
    status = str(body.get("status", ""))
    if status != "RUNNING":
        return status, None
    try:
        attrs = session.api.call(
            "compute.instances.getGuestAttributes", {**params, "variableKey": "mlplane/endpoint"}
        )
    except NotFound:
        return status, None
    return status, str(attrs.get("variableValue") or "") or None


def list_notebooks(session: Session) -> list[NotebookInfo]:
    out = []
    for rec in session.store.load().values():
        if not rec.stack.startswith(STACK_PREFIX) or not isinstance(rec.spec, Instance):
            continue
        labels = rec.spec.labels or {}
        status, endpoint = _endpoint(session, rec.key.name)
        token = token_of(session, rec.key.name) or ""
        port = int(endpoint.rpartition(":")[2]) if endpoint else None
        api = _api_status(port, token) if port else None
        state = (
            "RUNNING"
            if api
            else ("STARTING" if status in ("RUNNING", "STAGING", "PROVISIONING") else "STOPPED")
        )
        out.append(
            NotebookInfo(
                labels.get("mlplane-notebook", rec.key.name),
                rec.key.name,
                labels.get("mlplane-owner", "?"),
                state,
                f"http://{endpoint}/lab?token={token}" if endpoint else "",
                port,
                rec.updated_at,
                _idle(api) if api else None,
            )
        )
    return sorted(out, key=lambda n: n.instance)


def delete(session: Session, name: str) -> None:
    """Delete a notebook VM: its owner only (`experimentation.delete-instances` plus the owner
    label, since IAM alone would let any team member delete any instance)."""
    nb = delete_target(session, name)
    desired = DesiredState.destroy([STACK_PREFIX + nb.instance])
    session.engine().apply(desired, session.principal).raise_for_failures()
    for leftover in (_dir(session, nb.instance) / "token",):
        leftover.unlink(missing_ok=True)


def delete_target(session: Session, name: str) -> NotebookInfo:
    """The caller's notebook `name` (or its instance name); ConfigError when there is none,
    PermissionDenied when it is someone else's."""
    matches = [n for n in list_notebooks(session) if n.name == name or n.instance == name]
    if not matches:
        raise ConfigError("argument", "NAME", f"no notebook '{name}'")
    mine = [n for n in matches if n.owner == owner_label(session.principal)]
    if not mine:
        owners = ", ".join(sorted({n.owner for n in matches}))
        raise PermissionDenied(f"notebook '{name}' belongs to {owners}: only its owner deletes it")
    return mine[0]
