"""`build-images` against its anchor, `docker build` + `docker push` of the same images.

Two figures, each mlplane beside the anchor in the same run, on the same private Docker engine
(started here by its PID, stopped at the end) and the same local registry:
- a full build: every image built with no layer cache and pushed (the engine's images and
  build cache are pruned before each side). mlplane runs the whole trigger: its source, the
  prepare step (the Debian base and the wheels come from the cache, warmed first: debootstrap
  and downloads are not timed), the docker steps, and the deploy step (a new Cloud Run
  revision and an instance reset of the auxiliary service);
- a rebuild with no change: every layer a cache hit and every push finding its layers; mlplane
  deploys nothing (no digest changed). Goal (issue 12): <= 1.2x the anchor.

The anchor builds the very contexts mlplane staged (same Dockerfiles, same wheels), tagged as
mlplane tags them (a tag of its own and `latest`), and pushes both tags to the same registry,
as the project's admin. Usage (root, Debian's docker.io, docker-registry
and debootstrap installed): python bench/bench_build_images.py [REBUILDS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlplane.images.definitions import write_definitions
from mlplane.images.rootfs import base_rootfs
from mlplane.model.images import build_order
from mlplane.providers.local.paths import AgentPaths
from mlplane.providers.local.registry_info import read_address
from mlplane.workflows.ci import list_builds, run_on_branch
from mlplane.workflows.project_file import write_project_file
from tests import docker_engine
from tests.cicd.conftest import AUX
from tests.cicd.test_build_images_e2e import APP, DOCKERFILE
from tests.harness import ADMIN, Team, with_admin

USER = "alice@acme.com"


def git(root: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": USER,
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": USER,
    }
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)


def project(root: Path) -> Team:
    project_file = root / "mlplane.toml"
    write_project_file(project_file, project_id="acme-ml", members=[f"user:{USER}"])
    project_file.write_text(with_admin(project_file.read_text()) + AUX)
    write_definitions(root)
    (root / "images" / "hello").mkdir()
    (root / "images" / "hello" / "Dockerfile").write_text(DOCKERFILE)
    (root / "images" / "hello" / "app.py").write_text(APP.format(version="v1"))
    (root / ".gitignore").write_text(".mlplane/\nconfig/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "bench")
    return Team(project_file, root / "config")


def mlplane_build(team: Team) -> tuple[float, Path]:
    """Wall time of `build-images` (invoked as the user, run as cicd) and its workspace."""
    session = team.session(USER)
    start = time.perf_counter()
    build = run_on_branch(session, "build-images", "main", lambda _: None)
    took = time.perf_counter() - start
    assert build.status == "SUCCESS" and not build.detail, build
    return took, team.project_file.parent / ".mlplane" / "builds" / build.id / "workspace"


def anchor_build(
    engine: docker_engine.Dockerd,
    config: Path,
    registry: str,
    workspace: Path,
    tag: str,
    *,
    cache: bool,
) -> float:
    """`docker build` + `docker push` of the same contexts, in the same order."""
    repo = f"{registry}/acme-ml/mlplane"
    start = time.perf_counter()
    for name in build_order(["hello"]):
        args = ["build", "--network", "host", "-t", f"{repo}/{name}:{tag}"]
        args += ["-t", f"{repo}/{name}:latest"] + ([] if cache else ["--no-cache"])
        if name != "base":
            args += ["--build-arg", f"BASE={repo}/base:{tag}"]
        engine.docker("--config", str(config), *args, str(workspace / "images" / name))
        engine.docker("--config", str(config), "push", "--all-tags", f"{repo}/{name}")
    return time.perf_counter() - start


def prune(engine: docker_engine.Dockerd) -> None:
    engine.docker("system", "prune", "-af")
    engine.docker("builder", "prune", "-af", check=False)


def main(rebuilds: int = 3) -> int:
    why = docker_engine.unavailable()
    if why:
        print(f"cannot run: {why}")
        return 2
    base_rootfs()  # the Debian base is cached before anything is timed
    with tempfile.TemporaryDirectory() as tmp, docker_engine.running() as engine:
        os.environ["DOCKER_HOST"] = engine.host
        team = project(Path(tmp))
        team.up()
        try:
            registry = read_address(AgentPaths.for_project(team.project_file).root)
            assert registry, "the agent runs no registry"
            config = Path(tmp) / "docker-admin"
            token = team.api(ADMIN).credentials.token()
            engine.docker(
                "--config", str(config), "login", "-u", "oauth2accesstoken", "-p", token, registry
            )
            # warm the wheel cache and stage the contexts once (not timed), then a cold anchor
            warm, workspace = mlplane_build(team)
            prune(engine)
            cold_anchor = anchor_build(engine, config, registry, workspace, "anchor0", cache=False)
            prune(engine)
            (Path(tmp) / "images" / "hello" / "app.py").write_text(APP.format(version="v2"))
            git(Path(tmp), "commit", "-qam", "v2")  # a change: a new revision, a reset
            cold_mlplane, workspace = mlplane_build(team)
            ours, theirs = [], []
            for i in range(rebuilds):
                t, _ = mlplane_build(team)
                ours.append(t)
                theirs.append(
                    anchor_build(engine, config, registry, workspace, f"anchor{i + 1}", cache=True)
                )
            n = len(list_builds(team.session(USER)))
        finally:
            team.down()
    print(f"engine storage driver: {engine.driver}; builds: {n}; warm-up build {warm:.1f} s")
    print(
        f"full build      mlplane {cold_mlplane:7.1f} s   docker build+push {cold_anchor:7.1f} s"
        f"   ratio {cold_mlplane / cold_anchor:.2f}"
    )
    mo, ma = statistics.median(ours), statistics.median(theirs)
    print(
        f"no-change build mlplane {mo:7.2f} s   docker build+push {ma:7.2f} s"
        f"   ratio {mo / ma:.2f} (goal <= 1.2; medians of {rebuilds})"
    )
    print(f"  mlplane: {', '.join(f'{t:.2f}' for t in ours)}")
    print(f"  anchor:  {', '.join(f'{t:.2f}' for t in theirs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
