"""Cloud Build in the agent: the model's triggers, and builds that run their config.

A trigger run becomes a build: its source is recorded first (the project's git commit when the
project is a clean git checkout, else an immutable snapshot of the project directory stored
with the build, with its sha256), then its steps run in order as processes of a build worker
that has a metadata server of its own: the trigger's service account, with a token that lives
as long as the build. The step `mlplane` runs this machine's mlplane (`python -m mlplane`);
steps of `gcr.io/cloud-builders/docker` run the docker CLI against a reachable engine
(`build_docker.py`), and are skipped, saying why, without one; other builders are refused.

The build record (`.mlplane/builds/ID.json`) says who invoked what, as whom, from which
source, each step's result, and every object the build's identity wrote (from the artifact
store's own audit log). A restarted agent reads them back (`restore`): builds that were running
when the previous agent was killed end INTERNAL_ERROR (their steps died with it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlplane.model.builds import ENTRYPOINT, substitute
from mlplane.model.images import DOCKER_BUILDER

from ..procfs import start_time
from .build_docker import DockerSteps
from .host import Host, agent_environment, workload_environment
from .metadata import InstanceIdentity, MetadataServer
from .processes import ProcessId, kill_group, spawn
from .warm_pool import BUILD_WORKER, WarmWorker

log = logging.getLogger(__name__)
SNAPSHOT_EXCLUDE = {
    ".mlplane", ".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", "demo",
}  # fmt: skip
SNAPSHOT_MAX = 256 * 1024 * 1024
TERMINAL = ("SUCCESS", "FAILURE", "INTERNAL_ERROR", "TIMEOUT", "CANCELLED", "EXPIRED")


@dataclass
class StepRecord:
    id: str
    name: str
    args: list[str]
    entrypoint: str = ""
    env: list[str] = field(default_factory=list)
    status: str = "QUEUED"
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    skipped: str = ""  # why it did not run (e.g. no Docker engine)


@dataclass
class Source:
    kind: str  # "git" (a clean commit) | "snapshot" (the directory, as it was) | "none"
    commit: str = ""
    snapshot: str = ""  # path of the stored tarball
    sha256: str = ""
    dirty: bool = False


@dataclass
class BuildRecord:
    id: str
    trigger: str
    trigger_id: str
    invoker: str
    service_account: str
    substitutions: dict[str, str]
    steps: list[StepRecord]
    source: Source
    options: dict[str, Any]
    status: str = "QUEUED"
    status_detail: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    objects: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""
    wanted_images: list[str] = field(default_factory=list)  # the config's `images`
    images: list[dict[str, Any]] = field(default_factory=list)  # pushed: name, digest

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BuildRecord:
        """Read back `to_json` (TypeError or KeyError if it is not one)."""
        data = dict(d)
        data["steps"] = [StepRecord(**s) for s in data["steps"]]
        data["source"] = Source(**data["source"])
        return cls(**data)


class BuildRunner:
    def __init__(
        self, host: Host, zone: str, objects_written: Callable[[str], list[dict[str, Any]]]
    ) -> None:
        self.host = host
        self.zone = zone
        self.objects_written = objects_written
        self.builds: dict[str, BuildRecord] = {}
        self.finished: dict[str, asyncio.Event] = {}
        self._running: dict[str, ProcessId] = {}  # build id -> its step's process
        self.warm = WarmWorker(
            host.paths.logs / "warm-build-worker.log", BUILD_WORKER, ("mlplane",)
        )
        self.docker: DockerSteps | None = None  # docker builder steps (set by the wiring)

    async def start_worker(self) -> None:
        """Start the warm build worker (steps run cold until it is ready, or if it dies)."""
        try:
            await self.warm.start(agent_environment())
        except OSError as exc:
            log.warning("no warm build worker (%s): build steps start cold", exc)

    def restore(self) -> None:
        """Read the build records back; a build a killed agent was running ends INTERNAL_ERROR."""
        if not self.builds_dir.is_dir():
            return
        for path in sorted(self.builds_dir.glob("*.json")):
            try:
                rec = BuildRecord.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("build record %s not read back: %s", path, exc)
                continue
            if not rec.done:
                rec.status = "INTERNAL_ERROR"
                rec.status_detail = "the agent running the build was killed"
                rec.finished = time.time()
                for step in rec.steps:
                    if step.status in ("QUEUED", "WORKING"):
                        step.status = "CANCELLED" if step.status == "QUEUED" else "FAILURE"
                self._save(rec)
            self.builds[rec.id] = rec
            self.finished[rec.id] = asyncio.Event()
            self.finished[rec.id].set()

    async def close(self) -> None:
        await self.warm.stop()

    @property
    def builds_dir(self) -> Path:
        return self.host.paths.project_file.parent / ".mlplane" / "builds"

    # -- starting ------------------------------------------------------------------------------

    def start(
        self,
        trigger: str,
        trigger_id: str,
        invoker: str,
        service_account: str,
        config: dict[str, Any],
        substitutions: dict[str, str],
        needs_source: bool,
        commit: str = "",
    ) -> BuildRecord:
        build_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
        steps = [
            StepRecord(
                str(s.get("id") or f"step-{i}"),
                str(s.get("name", "")),
                list(s.get("args", [])),
                str(s.get("entrypoint", "")),
                list(s.get("env", [])),
            )
            for i, s in enumerate(config.get("steps", []))
        ]
        rec = BuildRecord(
            build_id, trigger, trigger_id, invoker, service_account, substitutions, steps,
            Source("none"), dict(config.get("options", {})),
        )  # fmt: skip
        rec.wanted_images = [str(i) for i in config.get("images", ())]
        if needs_source:
            rec.source = self._snapshot(build_id, commit)
        self.builds[build_id] = rec
        self.finished[build_id] = asyncio.Event()
        self._save(rec)
        self.host.background(self._run(rec))
        return rec

    def _workspace(self, build_id: str) -> Path:
        return self.builds_dir / build_id / "workspace"

    def _snapshot(self, build_id: str, commit: str) -> Source:
        """Record the source the build runs: a clean git commit, or a stored snapshot."""
        root = self.host.paths.project_file.parent
        workspace = self._workspace(build_id)
        workspace.mkdir(parents=True, mode=0o700)
        head = _git(root, "rev-parse", "HEAD") if (root / ".git").exists() else ""
        dirty = bool(head) and bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
        named = bool(commit) and bool(head) and bool(_git(root, "rev-parse", "--verify", commit))
        if head and (not dirty or named):  # a named branch or commit: as committed
            wanted = commit or head
            archive = subprocess.run(["git", "-C", str(root), "archive", wanted],
                                     capture_output=True, check=True).stdout  # fmt: skip
            _extract_bytes(archive, workspace)
            return Source("git", commit=_git(root, "rev-parse", wanted))
        tar = self.builds_dir / build_id / "source.tar.gz"
        size = 0
        with tarfile.open(tar, "w:gz") as out:
            for path in sorted(_walk(root)):
                size += path.stat().st_size
                if size > SNAPSHOT_MAX:
                    raise ValueError(f"the project directory {root} is over {SNAPSHOT_MAX} bytes")
                out.add(path, arcname=str(path.relative_to(root)), recursive=False)
        digest = hashlib.sha256(tar.read_bytes()).hexdigest()
        os.chmod(tar, 0o400)
        with tarfile.open(tar) as src:
            src.extractall(workspace, filter="data")
        return Source("snapshot", commit=head, snapshot=str(tar), sha256=digest, dirty=dirty)

    # -- running -------------------------------------------------------------------------------

    async def _run(self, rec: BuildRecord) -> None:
        rec.status, rec.started = "WORKING", time.time()
        self._save(rec)
        identity = InstanceIdentity(
            rec.id, self.zone, self.host.project_id, rec.service_account,
            {"build-id": rec.id, "trigger": rec.trigger}, origin="build",
        )  # fmt: skip
        metadata = MetadataServer(identity, self.host.tokens)
        log_path = self.host.paths.logs / f"build-{rec.id}.log"
        rec.log = str(log_path)
        status, detail = "SUCCESS", ""
        try:
            md_port = await metadata.start()
            values = self._values(rec)
            cwd = self._workspace(rec.id)
            if not cwd.exists():
                cwd = self.host.paths.project_file.parent
            for step in rec.steps:
                if rec.status == "CANCELLED":
                    break
                code = await self._step(rec, step, values, md_port, cwd, log_path)
                if code != 0:
                    status, detail = "FAILURE", f"step {step.id} exited {code}"
                    break
            skipped = [s.id for s in rec.steps if s.skipped]
            if status == "SUCCESS" and skipped:
                reason = next(s.skipped for s in rec.steps if s.skipped)
                detail = f"skipped {len(skipped)} steps ({', '.join(skipped)}): {reason}"
            if status == "SUCCESS" and rec.wanted_images and self.docker is not None:
                pushed = [substitute(i, values) for i in rec.wanted_images]
                rec.images = [i for i in await self.docker.digests(pushed) if i["digest"]]
        except Exception as exc:
            log.exception("build %s failed", rec.id)
            status, detail = "INTERNAL_ERROR", f"{type(exc).__name__}: {exc}"
        finally:
            await metadata.close()  # revokes the build's token
            rec.finished = time.time()
            rec.objects = self.objects_written(rec.id)
            if rec.status != "CANCELLED":  # the status goes last: a poller sees it with the rest
                rec.status, rec.status_detail = status, detail
            self._save(rec)
            self.finished[rec.id].set()
            log.info("build %s (%s) %s", rec.id, rec.trigger, rec.status)

    def _values(self, rec: BuildRecord) -> dict[str, str]:
        values = {
            "PROJECT_ID": self.host.project_id,
            "BUILD_ID": rec.id,
            "LOCATION": "global",
            "TRIGGER_NAME": rec.trigger,
            "COMMIT_SHA": rec.source.commit,
            "SHORT_SHA": rec.source.commit[:7],
            "REVISION_ID": rec.source.commit,
            "BRANCH_NAME": rec.substitutions.get("BRANCH_NAME", ""),
        }
        values.update(rec.substitutions)
        return values

    async def _step(
        self, rec: BuildRecord, step: StepRecord, values: dict[str, str], md_port: int,
        cwd: Path, log_path: Path,
    ) -> int:  # fmt: skip
        args = [substitute(a, values) for a in step.args]
        if step.name == DOCKER_BUILDER and self.docker is not None:
            return await self._docker_step(rec, step, args, cwd, log_path)
        if step.entrypoint != ENTRYPOINT:
            with open(log_path, "a") as f:
                f.write(f"mlplane-build: step {step.id}: builder '{step.name}' with entrypoint "
                        f"'{step.entrypoint}' needs a Docker engine; skipped\n")  # fmt: skip
            step.status, step.exit_code = "FAILURE", 125
            return 125
        argv = [sys.executable, "-m", "mlplane", *args]
        env = workload_environment(self.host, f"build-{rec.id}", md_port)
        for item in step.env:
            key, _, value = substitute(item, values).partition("=")
            env[key] = value
        env.update({"BUILD_ID": rec.id, "PROJECT_ID": self.host.project_id})
        step.status, step.started = "WORKING", time.time()
        self._save(rec)
        with open(log_path, "a") as f:
            command = " ".join(args)
            f.write(f"mlplane-build: step {step.id} as {rec.service_account}: mlplane {command}\n")
        warm = await self.warm.run("mlplane", args, env, cwd, log_path)
        if warm is None:
            proc = await spawn(argv, env, cwd, log_path, self.host.children)
            pid, wait = proc.id, proc.wait
            self.host.background(self.start_worker())  # for the next step
        else:
            pid, wait = ProcessId(warm.pid, start_time(warm.pid) or 0), warm.wait
            self.host.children.add(pid)
        return await self._finish(rec, step, pid, wait)

    async def _finish(
        self, rec: BuildRecord, step: StepRecord, pid: ProcessId,
        wait: Callable[[], Awaitable[int]],
    ) -> int:  # fmt: skip
        """Wait for a step's process (cancellable by its PID meanwhile); record how it ended."""
        self._running[rec.id] = pid
        try:
            code = int(await wait())
        finally:
            self.host.children.remove(pid.pid)
            self._running.pop(rec.id, None)
        step.finished, step.exit_code = time.time(), code
        step.status = "SUCCESS" if code == 0 else "FAILURE"
        self._save(rec)
        return code

    async def _docker_step(
        self, rec: BuildRecord, step: StepRecord, args: list[str], cwd: Path, log_path: Path
    ) -> int:
        assert self.docker is not None
        why = await self.docker.unavailable()
        with open(log_path, "a") as f:
            if why:
                f.write(f"mlplane-build: step {step.id}: docker {' '.join(args[:2])}...: "
                        f"skipped: {why}\n")  # fmt: skip
            else:
                f.write(f"mlplane-build: step {step.id} as {rec.service_account}: docker "
                        f"{' '.join(args)}\n")  # fmt: skip
        if why:
            step.status, step.skipped = "CANCELLED", why
            self._save(rec)
            return 0
        step.status, step.started = "WORKING", time.time()
        self._save(rec)
        pid, wait = await self.docker.start(rec.id, rec.service_account, args, cwd, log_path)
        return await self._finish(rec, step, pid, wait)

    def cancel(self, build_id: str) -> BuildRecord:
        rec = self.builds[build_id]
        if not rec.done:
            rec.status = "CANCELLED"
            pid = self._running.get(build_id)
            if pid is not None:
                kill_group(pid, signal.SIGTERM)
        return rec

    def _save(self, rec: BuildRecord) -> None:
        path = self.builds_dir / f"{rec.id}.json"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(rec.to_json(), f, indent=1)
        os.replace(tmp, path)


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                             timeout=30, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d for d in dirnames if d not in SNAPSHOT_EXCLUDE and not d.endswith(".egg-info")
        ]
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and not name.endswith((".pyc", ".log")):
                out.append(path)
    return out


def _extract_bytes(archive: bytes, dest: Path) -> None:
    import io

    with tarfile.open(fileobj=io.BytesIO(archive)) as src:
        src.extractall(dest, filter="data")
