"""CI triggers, run as Cloud Build runs them: a user invokes a trigger (`triggers.run`), the
trigger's build runs as the trigger's own service account (locally the agent runs it, with a
metadata server that gives that account's token to the build alone), and the build record says
who, what, from which source, and which objects the build's identity wrote.

Invoking is checked by the API as Cloud Build would (`cloudbuild.builds.create`) and, since
Cloud Build has no per-trigger IAM, also against the invoker's process (docs/decisions/0006).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplane.errors import ConfigError, MlplaneError
from mlplane.workflows.session import Session

Progress = Callable[[str], None]
TERMINAL = ("SUCCESS", "FAILURE", "INTERNAL_ERROR", "TIMEOUT", "CANCELLED", "EXPIRED")


class BuildFailed(MlplaneError):
    """A build ended in another status than SUCCESS; the message has the end of its log."""


@dataclass(frozen=True)
class WrittenObject:
    uri: str
    size: int
    md5_hash: str
    crc32c: str
    generation: int


@dataclass(frozen=True)
class PushedImage:
    name: str  # as tagged (HOST/PROJECT/REPOSITORY/IMAGE:TAG)
    digest: str  # sha256:...


@dataclass(frozen=True)
class Build:
    id: str
    trigger: str
    status: str  # QUEUED, WORKING, SUCCESS, FAILURE, ...
    invoker: str
    runs_as: str
    substitutions: dict[str, str] = field(default_factory=dict)
    source: str = ""  # "git COMMIT", "snapshot SHA256 (PATH)", or ""
    started: float | None = None
    finished: float | None = None
    detail: str = ""
    objects: tuple[WrittenObject, ...] = ()
    log: str = ""
    images: tuple[PushedImage, ...] = ()  # what the build pushed, with digests

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


def _source(d: Mapping[str, Any]) -> str:
    kind = d.get("kind", "none")
    if kind == "git":
        return f"git {d.get('commit', '')}"
    if kind == "snapshot":
        dirty = f", working tree of {d['commit'][:12]}" if d.get("commit") else ""
        return f"snapshot sha256:{d.get('sha256', '')}{dirty}"
    return ""


def _from_record(d: Mapping[str, Any]) -> Build:
    objects = tuple(
        WrittenObject(
            str(o.get("resource", "")),
            int(o.get("size", 0)),
            str(o.get("md5Hash", "")),
            str(o.get("crc32c", "")),
            int(o.get("generation", 0)),
        )
        for o in d.get("objects", ())
    )
    return Build(
        id=str(d["id"]),
        trigger=str(d["trigger"]),
        status=str(d["status"]),
        invoker=str(d.get("invoker", "")),
        runs_as=str(d.get("service_account", "")),
        substitutions=dict(d.get("substitutions", {})),
        source=_source(d.get("source", {})),
        started=d.get("started") or d.get("created"),
        finished=d.get("finished"),
        detail=str(d.get("status_detail", "")),
        objects=objects,
        log=str(d.get("log", "")),
        images=tuple(
            PushedImage(str(i.get("name", "")), str(i.get("digest", "")))
            for i in d.get("images", ())
        ),
    )


def _records_dir(session: Session) -> Path:
    return session.state_dir / "builds"


def read_build(session: Session, build_id: str) -> Build | None:
    """The build's record, as the local Cloud Build wrote it (None: not found here)."""
    try:
        return _from_record(json.loads((_records_dir(session) / f"{build_id}.json").read_text()))
    except (OSError, ValueError, KeyError):
        return None


def list_builds(session: Session) -> list[Build]:
    out = []
    try:
        paths = sorted(_records_dir(session).glob("*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            out.append(_from_record(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError):
            continue
    return sorted(out, key=lambda b: b.started or 0.0)


def check_trigger(session: Session, trigger: str) -> None:
    """A clear error, before anything is sent, for a trigger the model does not have."""
    triggers = session.authz.policy.triggers
    info = triggers.get(trigger)
    if info is None:
        known = ", ".join(sorted(triggers))
        raise ConfigError("argument", "TRIGGER", f"no trigger '{trigger}' (triggers: {known})")
    if info.event != "manual":
        raise ConfigError(
            "argument", "TRIGGER", f"trigger '{trigger}' is not manual: it {info.usage}"
        )


def authorize_invocation(session: Session, trigger: str) -> None:
    """What Cloud Build checks when the caller runs `trigger` (`cloudbuild.builds.create` on
    the project) and, since Cloud Build has no per-trigger IAM, the model's own check that the
    caller holds the trigger's process's "invoke" action (as the local agent checks it):
    PermissionDenied before anything is sent. The API checks again."""
    from mlplane.errors import PermissionDenied
    from mlplane.model.refs import ResourceRef

    principal = session.principal
    project = ResourceRef.project_root(session.project_id)
    decision = session.authz.authorize(principal, "cloudbuild.builds.create", project)
    if not decision.allowed:
        raise PermissionDenied(decision.explain(), decision)
    invoking = session.authz.may_invoke(principal, trigger)
    if invoking is not None and not invoking.allowed:
        raise PermissionDenied(
            f"{principal} may not invoke the CI trigger '{trigger}': {invoking.explain()}",
            invoking,
        )


def trigger_call(
    session: Session, trigger: str, substitutions: Mapping[str, str], branch: str = "main"
) -> tuple[dict[str, str], dict[str, Any]]:
    """The parameters and body of `cloudbuild.projects.triggers.run` for `trigger`."""
    params = {"projectId": session.project_id, "triggerId": trigger}
    return params, {"substitutions": dict(substitutions), "branchName": branch}


class _LogTail:
    """Follow a local build's log file (the agent's Cloud Logging stand-in)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.path: Path | None = None
        self.offset = 0
        self.partial = ""

    def feed(self, log_url: str) -> None:
        if not log_url.startswith("file://"):
            return
        self.path = Path(log_url.removeprefix("file://"))
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        self.offset += len(chunk)
        text = self.partial + chunk.decode("utf-8", "replace")
        *lines, self.partial = text.split("\n")
        for line in lines:
            self.progress("  | " + line)

    def tail(self, n: int = 20) -> str:
        if self.path is None:
            return ""
        try:
            return "\n".join(self.path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def run_trigger(
    session: Session,
    trigger: str,
    substitutions: Mapping[str, str],
    progress: Progress = print,
    *,
    timeout: float = 3600.0,
) -> Build:
    """Run `trigger` with `substitutions` (`_SERVICE`, ...) as the caller; wait for its build,
    following its log; return its record. Raises BuildFailed unless it succeeded."""
    check_trigger(session, trigger)
    return _run(session, trigger, substitutions, "main", progress, timeout)


def run_on_branch(
    session: Session, trigger: str, branch: str, progress: Progress = print, *,
    timeout: float = 3600.0,
) -> Build:  # fmt: skip
    """Run a push trigger as a push to `branch` would (`mlplane ci run build-images --branch
    main`, or a git hook after a merge): the build takes that branch's commit."""
    check_push_trigger(session, trigger, branch)
    return _run(session, trigger, {}, branch, progress, timeout)


def check_push_trigger(session: Session, trigger: str, branch: str) -> None:
    """A clear error, before anything is sent, unless `trigger` is a push trigger that builds
    `branch` (Cloud Build refuses other branches too)."""
    info = session.authz.policy.triggers.get(trigger)
    if info is None:
        known = ", ".join(sorted(session.authz.policy.triggers))
        raise ConfigError("argument", "TRIGGER", f"no trigger '{trigger}' (triggers: {known})")
    if info.event == "manual":
        raise ConfigError(
            "argument", "TRIGGER", f"trigger '{trigger}' is manual: `mlplane ci trigger {trigger}`"
        )
    project = session.loaded.project
    declared = next((t for t in project.triggers if t.name == trigger), None)
    wanted = (declared.branch if declared is not None else "") or project.ci.branch
    if branch != wanted:
        raise ConfigError(
            "argument", "--branch", f"trigger '{trigger}' runs on pushes to ^{wanted}$ only, "
            f"not '{branch}'",
        )  # fmt: skip


def poll_interval(waited: float, most: float) -> float:
    """How long to sleep before the next poll of something waited for `waited` seconds: a
    twentieth of that (what the wait adds to a build is at most 5 %), from a tenth of the
    platform's `most` (2 ms on the local agent, whose `builds.get` costs it ~0.2 ms of CPU;
    0.2 s against Google's quotas) up to `most`."""
    return min(max(waited / 20, most / 10), most)


def _run(
    session: Session, trigger: str, substitutions: Mapping[str, str], branch: str,
    progress: Progress, timeout: float,
) -> Build:  # fmt: skip
    params, body = trigger_call(session, trigger, substitutions, branch)
    op = session.api.call("cloudbuild.projects.triggers.run", params, body)
    build = op["metadata"]["build"]
    build_id = str(build["id"])
    progress(f"build {build_id}: trigger '{trigger}' running as "
             f"{str(build.get('serviceAccount', '')).rsplit('/', 1)[-1]}")  # fmt: skip
    tail = _LogTail(progress)
    started = time.monotonic()
    deadline = started + timeout
    get = {"projectId": session.project_id, "id": build_id}
    while build.get("status") not in TERMINAL:
        now = time.monotonic()
        if now > deadline:
            raise BuildFailed(f"build {build_id} not done after {timeout:.0f} s")
        time.sleep(poll_interval(now - started, session.platform.max_poll_interval))
        build = session.api.call("cloudbuild.projects.builds.get", get)
        tail.feed(str(build.get("logUrl", "")))
    tail.feed(str(build.get("logUrl", "")))
    record = read_build(session, build_id)
    status = str(build.get("status"))
    if status != "SUCCESS":
        detail = build.get("statusDetail") or build.get("failureInfo", {}).get("detail", "")
        log = tail.tail()
        raise BuildFailed(
            f"build {build_id} ({trigger}) {status}: {detail}" + (f"\n{log}" if log else "")
        )
    if record is not None:
        return record
    return Build(build_id, trigger, status, str(session.principal),
                 str(build.get("serviceAccount", "")).rsplit("/", 1)[-1],
                 dict(substitutions))  # fmt: skip
