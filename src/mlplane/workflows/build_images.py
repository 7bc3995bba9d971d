"""`build-images`, the CI/CD process's trigger: what its mlplane steps do, as the cicd account.

    prepare   remember the digest each image's `latest` names now (to tell what changed), then
              stage the build contexts (the Debian base, the pinned wheels, mlplane's wheel)
    (docker)  build and push every image, tagged with the build id and `latest`
    deploy    resolve this build's tag of each image to its digest (the registry, with the
              build's token); roll a new revision of each auxiliary Cloud Run service whose
              image changed (Cloud Run Admin v2 `services.patch`, traffic to the latest) and
              reset each auxiliary instance whose image changed (`instances.reset`: it pulls
              `latest` again as it starts)

Locally, without a Docker engine, the docker steps are skipped by the agent and these steps say
so and change nothing. Run by anyone else than the trigger's account, the deploy is refused by
IAM with the trigger named (Cloud Run and instance permissions are held by cicd alone).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplane.errors import MlplaneError
from mlplane.model.images import DIRECTORY, ImageRef, in_repository, repository_id
from mlplane.workflows.session import Session

Progress = Callable[[str], None]
PREVIOUS = ".previous-digests.json"  # in the workspace's images/: what `latest` named before


class DeployFailed(MlplaneError):
    """A Cloud Run revision or an instance reset did not complete."""


@dataclass(frozen=True)
class Rollout:
    service: str
    image: str  # the new image, by digest ("" when this build pushed none for it)
    revision: str = ""  # the revision now serving ("" when unchanged)
    changed: bool = False


@dataclass(frozen=True)
class Reset:
    instance: str
    image: str
    reset: bool = False


@dataclass(frozen=True)
class DeployResult:
    pushed: dict[str, str] = field(default_factory=dict)  # image name -> digest of this build
    rollouts: tuple[Rollout, ...] = ()
    resets: tuple[Reset, ...] = ()
    skipped: str = ""


def _engine_missing(session: Session) -> str:
    from mlplane.workflows import compose

    return compose.docker_engine_missing(session)


def _client(session: Session, repository: str) -> Any:
    from mlplane.images.registry import RegistryClient
    from mlplane.workflows import compose

    return RegistryClient(repository.split("/", 1)[0], compose.access_token(session.api))


def prepare(
    session: Session, workspace: Path, repository: str, images: tuple[str, ...], progress: Progress
) -> int:
    """The prepare step; how many contexts it staged."""
    from mlplane.images.stage import stage

    missing = _engine_missing(session)
    if missing:
        progress(f"prepare: skipped (the image builds will be too): {missing}")
        return 0
    client = _client(session, repository)
    previous: dict[str, str] = {}
    for name in _auxiliary_images(session):  # what the deploy step compares with
        digest = client.digest(ImageRef.parse(f"{repository}/{name}:latest"))
        if digest:
            previous[name] = digest
    root = workspace / DIRECTORY
    root.mkdir(parents=True, exist_ok=True)
    (root / PREVIOUS).write_text(json.dumps(previous, indent=1, sort_keys=True))
    staged = stage(workspace, images, progress)
    for s in staged:
        progress(f"prepare: {s.image}: {s.files} files staged in {s.context}")
    return len(staged)


def _auxiliary_images(session: Session) -> list[str]:
    """The images of the project's repository its auxiliary services run (what can change)."""
    project = session.loaded.project
    pid, repo = project.project.id, repository_id(project)
    declared = [i.image for i in project.auxiliary.instances]
    declared += [r.image for r in project.auxiliary.run_services]
    names = (in_repository(project.resolve(image), pid, repo) for image in declared)
    return sorted({n for n in names if n})


def _previous(workspace: Path) -> dict[str, str]:
    try:
        data = json.loads((workspace / DIRECTORY / PREVIOUS).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def deploy(
    session: Session, workspace: Path, repository: str, tag: str, progress: Progress
) -> DeployResult:
    """The last step: roll what changed out to the auxiliary services."""
    project = session.loaded.project
    pid, repo = project.project.id, repository_id(project)
    # What runs now, read first as the step's identity: anyone but the trigger's account is
    # refused here, with the trigger named, whether or not there is anything to deploy.
    current = {
        svc.name: session.api.call(
            "run.projects.locations.services.get",
            {"name": _service_name(session, svc.name, svc.region)},
        )
        for svc in project.auxiliary.run_services
    }
    missing = _engine_missing(session)
    if missing:
        progress(
            f"deploy: skipped: no image was built ({missing}); Cloud Run services and "
            "auxiliary instances keep what they run"
        )
        return DeployResult(skipped=missing)
    client = _client(session, repository)
    pushed: dict[str, str] = {}
    for name in _auxiliary_images(session):
        digest = client.digest(ImageRef.parse(f"{repository}/{name}:{tag}"))
        if digest:
            pushed[name] = digest
            progress(f"deploy: {repository}/{name}@{digest} (tag {tag})")
        else:
            progress(f"deploy: {repository}/{name}:{tag} was not pushed by this build")
    previous = _previous(workspace)
    rollouts = []
    for svc in project.auxiliary.run_services:
        image = in_repository(project.resolve(svc.image), pid, repo) or ""
        name = _service_name(session, svc.name, svc.region)
        rollouts.append(
            _rollout(
                session,
                svc.name,
                name,
                current[svc.name],
                pushed.get(image, ""),
                image,
                repository,
                progress,
            )
        )
    resets = []
    for inst in project.auxiliary.instances:
        name = in_repository(project.resolve(inst.image), pid, repo) or ""
        digest = pushed.get(name, "")
        changed = bool(digest) and previous.get(name) != digest
        if changed:
            _reset(session, inst.name, inst.zone or session.zone, progress)
            progress(f"deploy: instance {inst.name} reset: it runs {repository}/{name}@{digest}")
        else:
            progress(f"deploy: instance {inst.name}: its image did not change; not reset")
        resets.append(Reset(inst.name, f"{repository}/{name}@{digest}" if digest else "", changed))
    return DeployResult(pushed, tuple(rollouts), tuple(resets))


def _service_name(session: Session, service: str, region: str | None) -> str:
    where = region or session.loaded.project.project.region
    return f"projects/{session.project_id}/locations/{where}/services/{service}"


def _rollout(
    session: Session,
    service: str,
    name: str,
    body: dict[str, Any],
    digest: str,
    image: str,
    repository: str,
    progress: Progress,
) -> Rollout:
    if not image or not digest:
        progress(f"deploy: Cloud Run service {service}: no new image from this build")
        return Rollout(service, "")
    target = f"{repository}/{image}@{digest}"
    containers = body.get("template", {}).get("containers") or [{}]
    if containers[0].get("image") == target:
        progress(f"deploy: Cloud Run service {service} already runs {target}")
        return Rollout(service, target)
    template = dict(body.get("template", {}))
    template.pop("revision", None)
    template["containers"] = [{**containers[0], "image": target}, *containers[1:]]
    patch = {"template": template}
    op = session.api.call(
        "run.projects.locations.services.patch", {"name": name, "updateMask": "template"}, patch
    )
    done = _wait_run(session, op)
    service_json = done.get("response", {})
    revision = str(service_json.get("latestReadyRevision", "")).rsplit("/", 1)[-1]
    progress(
        f"deploy: Cloud Run service {service}: revision {revision} serves {target} "
        f"at {service_json.get('uri', '')}"
    )
    return Rollout(service, target, revision, True)


def _wait_run(session: Session, op: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    deadline, delay = time.monotonic() + timeout, 0.05
    while not op.get("done"):
        if time.monotonic() > deadline:
            raise DeployFailed(f"Cloud Run operation {op.get('name')} not done after {timeout} s")
        time.sleep(delay)
        delay = min(delay * 1.5, max(session.platform.max_poll_interval, 0.2))
        op = session.api.call("run.projects.locations.operations.get", {"name": op["name"]})
    if "error" in op:
        raise DeployFailed(f"Cloud Run: {op['error'].get('message', op['error'])}")
    return op


def _reset(session: Session, instance: str, zone: str, progress: Progress) -> None:
    params = {"project": session.project_id, "zone": zone, "instance": instance}
    op = session.api.call("compute.instances.reset", params)
    deadline, delay = time.monotonic() + 300.0, 0.05
    while op.get("status") != "DONE":
        if time.monotonic() > deadline:
            raise DeployFailed(f"reset of {instance} not done after 300 s")
        time.sleep(delay)
        delay = min(delay * 1.5, max(session.platform.max_poll_interval, 0.2))
        op = session.api.call(
            "compute.zoneOperations.get",
            {"project": session.project_id, "zone": zone, "operation": op["name"]},
        )
    if op.get("error"):
        raise DeployFailed(f"reset of {instance}: {op['error']}")
