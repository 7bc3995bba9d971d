"""What the benchmarks that run a local agent share: a project of their own in a temporary
directory (project `bench-ml`, one member), a config directory of their own with no outside
credentials, and the agent up with that member signed in, stopped at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlplane.workflows import compose
from mlplane.workflows.project_file import write_project_file
from mlplane.workflows.session import Session

USER = "alice@acme.com"


def isolate(root: Path) -> None:
    """Sign-ins under `root/config`; no credentials of the caller's environment."""
    os.environ["MLPLANE_CONFIG_DIR"] = str(root / "config")
    for var in ("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", "GOOGLE_APPLICATION_CREDENTIALS"):
        os.environ.pop(var, None)


def write_project(path: Path, data_plane: str = "python") -> Path:
    """A project file at `path` whose member is USER (`data_plane`: its [local] data plane)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_project_file(path, project_id="bench-ml", members=[f"user:{USER}"])
    if data_plane != "python":
        with path.open("a") as f:
            f.write(f'\n[local]\ndata_plane = "{data_plane}"\n')
    return path


@contextmanager
def signed_in(project: Path) -> Iterator[Session]:
    """The project's agent up and USER signed in (a session as USER); the agent stopped after."""
    compose.agent_up(project)
    try:
        compose.login(USER)
        compose.activate(USER)
        yield Session.open(project)
    finally:
        compose.agent_down(project)
