"""A project with auxiliary services, its agent started without a Docker engine (DOCKER_HOST names
a socket that does not exist), so the registry, Cloud Run and build-images are tested where no
engine runs; the engine's own end-to-end test is test_build_images_e2e.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlplane.examples.sentiment.train import train
from mlplane.providers.local.paths import AgentPaths
from mlplane.providers.local.registry_info import read_address
from mlplane.workflows.project_file import write_project_file
from tests.harness import ADMIN, Team, with_admin
from tests.iam.tools import gcloud, missing

ALICE = "alice@acme.com"
AUX = """
[[auxiliary.run_services]]
name = "hello"
image = "{region}-docker.pkg.dev/{project}/mlplane/hello"

[[auxiliary.instances]]
name = "aux-hello"
image = "{region}-docker.pkg.dev/{project}/mlplane/hello"
"""
NO_ENGINE = "unix:///nonexistent/mlplane-test/docker.sock"


@dataclass
class CicdProject:
    root: Path
    team: Team
    artifact: Path

    @property
    def registry(self) -> str:
        return read_address(AgentPaths.for_project(self.team.project_file).root)


def require_registry() -> None:
    if shutil.which("docker-registry") is None:
        missing("Debian's docker-registry is not installed (apt-get install docker-registry)")


@pytest.fixture(scope="module")
def no_engine_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CicdProject]:
    yield from started_project(tmp_path_factory)


def started_project(factory: pytest.TempPathFactory, extra: str = "") -> Iterator[CicdProject]:
    """A project with auxiliary services (and `extra` TOML), its agent up without an engine."""
    require_registry()
    root = factory.mktemp("cicd")
    project_file = root / "mlplane.toml"
    write_project_file(project_file, project_id="acme-ml", members=[f"user:{ALICE}"])
    project_file.write_text(with_admin(project_file.read_text()) + AUX + extra)
    artifact = Path(train(root / "model", seed=3, progress=lambda *_: None))
    team = Team(project_file, root / "config")
    saved = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = NO_ENGINE  # the agent (and its builds) find no engine
    try:
        team.up()
        yield CicdProject(root, team, artifact)
    finally:
        team.down()
        if saved is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = saved


def gcloud_json(cp: CicdProject, timeout: float = 120) -> Callable[..., Any]:
    """`run(*ARGS)`: the real gcloud's `ARGS --format=json` as the project's admin, against its
    agent; the parsed output of a command that must succeed."""
    from mlplane.workflows.gcloud_env import gcloud_environment

    binary = gcloud()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSDK_", "GOOGLE_"))}
    with cp.team.acting(ADMIN):
        env.update(gcloud_environment(cp.team.session(ADMIN)))

    def run(*args: str) -> Any:
        out = subprocess.run(
            [binary, *args, "--format=json"], capture_output=True, text=True, timeout=timeout,
            env=env,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    return run
