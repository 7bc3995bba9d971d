"""Where the local agent of a project keeps its files: `.mlplane/agent/` beside the project file.

agent.lock      flock held by the running agent for its whole life (one agent per project)
agent.pid       the agent's PID, written as soon as it holds the lock
launch.lock     flock held by `mlplane up` while it checks, starts and waits (races are safe)
agent.json      pid, API port and start time, written once the API listens
tokens.json     sha256 of the sign-in and impersonation tokens the agent issued (mode 0600)
resources/      one 0600 JSON file per resource (KIND/NAME.json): what a restarted agent restores
servicemanagement/  Endpoints configs, rollouts and enabled services (restored likewise)
cloudrun/       one 0600 JSON file per Cloud Run service (NAME.json), kept by `down` too
start-error     why the last agent could not start (what `mlplane up` reports)
agent.log       the agent's log
children.json   pid and start time of every process the agent supervises (for crash cleanup)
logs/NAME.log   stdout and stderr of each instance or replica process
dataplane.*     the data plane's lock, pid file (dataplane.json), control socket and log: see
                `providers/local/dataplane/files.py` (it outlives a killed agent, to be adopted)
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_DIR = ".mlplane"
AGENT_DIR = "agent"


@dataclass(frozen=True)
class AgentPaths:
    project_file: Path
    root: Path

    @classmethod
    def for_project(cls, project_file: Path | str) -> AgentPaths:
        project = Path(project_file).resolve()
        return cls(project, project.parent / STATE_DIR / AGENT_DIR)

    @classmethod
    def for_workdir(cls, workdir: Path | str) -> AgentPaths:
        """From a `ProviderContext.workdir`: the project's directory (or its `.mlplane`)."""
        d = Path(workdir).resolve()
        if d.name == STATE_DIR:
            d = d.parent
        return cls.for_project(d / "mlplane.toml")

    @property
    def lock(self) -> Path:
        return self.root / "agent.lock"

    @property
    def pid_file(self) -> Path:
        return self.root / "agent.pid"

    @property
    def launch_lock(self) -> Path:
        return self.root / "launch.lock"

    @property
    def info(self) -> Path:
        return self.root / "agent.json"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens.json"

    @property
    def log(self) -> Path:
        return self.root / "agent.log"

    @property
    def resources(self) -> Path:
        return self.root / "resources"

    @property
    def servicemanagement(self) -> Path:
        return self.root / "servicemanagement"

    @property
    def cloudrun(self) -> Path:
        return self.root / "cloudrun"

    @property
    def start_error(self) -> Path:
        return self.root / "start-error"

    @property
    def children(self) -> Path:
        return self.root / "children.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.logs.mkdir(exist_ok=True, mode=0o700)


@dataclass(frozen=True)
class AgentInfo:
    """`agent.json`: how to reach the running agent."""

    pid: int
    port: int
    project_file: str
    started_at: float

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write via a temp file created with `mode` and a rename: readers never see a partial file
    and a secret is never readable by others, not even briefly."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_info(paths: AgentPaths, info: AgentInfo) -> None:
    write_atomic(paths.info, json.dumps(asdict(info)), mode=0o644)


def read_info(paths: AgentPaths) -> AgentInfo | None:
    try:
        d = json.loads(paths.info.read_text())
        return AgentInfo(int(d["pid"]), int(d["port"]), str(d["project_file"]), d["started_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_pid(paths: AgentPaths) -> int | None:
    try:
        return int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
