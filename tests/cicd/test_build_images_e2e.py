"""End to end, with a Docker engine this test starts (and stops by its PID): a commit to main that
changes an auxiliary service's code runs `build-images` as the cicd account, which builds every
image on the Debian base and pushes it to the local registry, rolls a new Cloud Run revision
that answers with the change, and resets the auxiliary instance, which comes back on the new
digest. The real gcloud CLI lists and runs the trigger and describes the build, the service
and its revisions; a user's own push is refused.

Slow (the first build makes every image; the Debian base and the wheels are cached in the
user's cache between sessions): marked `slow`, one build pipeline per session.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlplane.cli.main import main
from mlplane.images.definitions import write_definitions
from mlplane.workflows.ci import Build, list_builds
from mlplane.workflows.gcloud_env import gcloud_environment
from mlplane.workflows.project_file import write_project_file
from tests import docker_engine
from tests.cicd.conftest import ALICE, AUX, CicdProject
from tests.harness import ADMIN, Team, with_admin
from tests.iam.tools import gcloud, missing

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
LOC = "projects/acme-ml/locations/us-central1"
APP = """\
import http.server, os
VERSION = "{version}"
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello {{VERSION}}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
port = int(os.environ.get("PORT", "8080"))
http.server.ThreadingHTTPServer(("127.0.0.1", port), Hello).serve_forever()
"""
DOCKERFILE = """\
ARG BASE
FROM ${BASE}
COPY app.py /app/app.py
CMD ["python3", "/app/app.py"]
"""


@dataclass
class World:
    project: CicdProject
    engine: docker_engine.Dockerd
    builds: list[Build] = field(default_factory=list)
    answers: list[tuple[str, str]] = field(default_factory=list)  # (cloud run, instance)
    container_images: list[str] = field(default_factory=list)  # aux-hello's image id
    revisions: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.project.root

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(self.root), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={
                **os.environ,
                "GIT_AUTHOR_NAME": "Alice",
                "GIT_AUTHOR_EMAIL": ALICE,
                "GIT_COMMITTER_NAME": "Alice",
                "GIT_COMMITTER_EMAIL": ALICE,
            },
        )
        return out.stdout.strip()

    def gcloud(self, who: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSDK_", "GOOGLE_"))}
        with self.project.team.acting(who):
            env.update(gcloud_environment(self.project.team.session(who)))
        return subprocess.run(
            [gcloud(), *args], capture_output=True, text=True, timeout=300, env=env
        )


def fetch(url: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return str(resp.read().decode().strip())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def observe(w: World) -> None:
    """What the auxiliary services answer now, and which image aux-hello's container runs."""
    team = w.project.team
    svc = team.api(ADMIN).call(
        "run.projects.locations.services.get", {"name": f"{LOC}/services/hello"}
    )
    w.revisions.append(svc["latestReadyRevision"].rsplit("/", 1)[-1])
    token = team.api(ADMIN).credentials.token()
    procs = {p.name: p for p in team.session(ADMIN).platform.processes(token)}
    aux = procs["aux-hello"]
    assert aux.status == "RUNNING" and aux.port
    w.answers.append((fetch(svc["uri"]), fetch(f"http://127.0.0.1:{aux.port}/")))
    ids = w.engine.docker(
        "ps", "--filter", "label=dev.mlplane.workload=aux-hello", "--format", "{{.Image}}"
    ).stdout.split()
    assert len(ids) == 1, ids
    w.container_images.append(ids[0])


def wait_build(team: Team, build_id: str) -> dict[str, Any]:
    api = team.api(ALICE)
    deadline = time.monotonic() + 1200
    while True:
        got = api.call("cloudbuild.projects.builds.get", {"projectId": "acme-ml", "id": build_id})
        if got["status"] not in ("QUEUED", "WORKING"):
            return got
        assert time.monotonic() < deadline, got
        time.sleep(0.5)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    why = docker_engine.unavailable()
    if why:
        missing(f"a private Docker engine cannot run here: {why}")
    root = tmp_path_factory.mktemp("e2e")
    project_file = root / "mlplane.toml"
    write_project_file(project_file, project_id="acme-ml", members=[f"user:{ALICE}"])
    project_file.write_text(with_admin(project_file.read_text()) + AUX)
    write_definitions(root)
    (root / "images" / "hello").mkdir()
    (root / "images" / "hello" / "Dockerfile").write_text(DOCKERFILE)
    (root / "images" / "hello" / "app.py").write_text(APP.format(version="v1"))
    (root / ".gitignore").write_text(".mlplane/\nconfig/\n")
    team = Team(project_file, root / "config")
    saved = os.environ.get("DOCKER_HOST")
    with docker_engine.running() as engine:
        os.environ["DOCKER_HOST"] = engine.host
        w = World(CicdProject(root, team, root), engine)
        w.git("init", "-q", "-b", "main")
        w.git("add", "-A")
        w.git("commit", "-qm", "images and a hello service")
        try:
            team.up()
            yield w
        finally:
            team.down()
            if saved is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = saved


@pytest.fixture(scope="module")
def built(world: World) -> World:
    """Two builds: the first commit through `mlplane ci run`, the change through gcloud."""
    w = world
    team = w.project.team
    with team.acting(ALICE):
        code = main(["-f", str(team.project_file), "ci", "run", "build-images", "--branch", "main"])
    assert code == 0
    w.builds.append(list_builds(team.session(ALICE))[-1])
    observe(w)

    (w.root / "images" / "hello" / "app.py").write_text(APP.format(version="v2"))
    w.git("commit", "-qam", "hello v2")
    ran = w.gcloud(
        ALICE, "builds", "triggers", "run", "build-images", "--branch=main", "--format=json"
    )
    assert ran.returncode == 0, ran.stderr
    build_id = json.loads(ran.stdout)["metadata"]["build"]["id"]
    assert wait_build(team, build_id)["status"] == "SUCCESS"
    w.builds.append(next(b for b in list_builds(team.session(ALICE)) if b.id == build_id))
    observe(w)
    return w


def test_a_change_on_main_rolls_a_new_revision_and_resets_the_instance(built: World) -> None:
    w = built
    first, second = w.builds
    assert [b.status for b in w.builds] == ["SUCCESS", "SUCCESS"]
    assert first.runs_as == second.runs_as == w.project.team.session(ALICE).email("cicd")
    assert first.source == f"git {w.git('rev-parse', 'HEAD~1')}"
    assert second.source == f"git {w.git('rev-parse', 'HEAD')}"
    digests = [{i.name.split("/")[-1].split(":")[0]: i.digest for i in b.images} for b in w.builds]
    assert set(digests[0]) == {"base", "mlplane", "serving", "training", "experimentation", "hello"}
    assert digests[1]["hello"] != digests[0]["hello"]  # a new digest for the changed image
    for name in ("base", "mlplane", "serving", "training", "experimentation"):
        assert digests[1][name] == digests[0][name], name  # the others did not change
    assert w.answers == [("hello v1", "hello v1"), ("hello v2", "hello v2")]
    assert w.revisions[0] != w.revisions[1] and w.revisions[1].startswith("hello-0000")
    # the instance came back on the new digest
    image_of = json.loads(w.engine.docker("image", "inspect", w.container_images[1]).stdout)[0]
    assert any(d.endswith(digests[1]["hello"]) for d in image_of["RepoDigests"])


def test_the_images_run_what_they_were_built_for(built: World) -> None:
    w = built
    registry = w.project.registry
    ref = f"{registry}/acme-ml/mlplane"
    out = w.engine.docker(
        "run",
        "--rm",
        "--network",
        "host",
        f"{ref}/experimentation:latest",
        "python",
        "-c",
        "import jupyterlab, duckdb, mlplane.data; print('ok')",
    )
    assert out.stdout.strip() == "ok"
    out = w.engine.docker(
        "run",
        "--rm",
        "--network",
        "host",
        f"{ref}/serving:latest",
        "python",
        "-m",
        "mlplane.serving",
        "--help",
    )
    assert "--artifact" in out.stdout
    out = w.engine.docker(
        "run", "--rm", "--network", "host", f"{ref}/base:latest", "python3", "--version"
    )
    assert out.stdout.strip() == "Python 3.11.2"


def test_gcloud_shows_the_trigger_the_build_and_the_service(built: World) -> None:
    w = built
    triggers = json.loads(w.gcloud(ALICE, "builds", "triggers", "list", "--format=json").stdout)
    assert "build-images" in {t["name"] for t in triggers}
    described = w.gcloud(ALICE, "builds", "describe", w.builds[1].id, "--format=json")
    assert described.returncode == 0, described.stderr
    build = json.loads(described.stdout)
    assert build["status"] == "SUCCESS"
    pushed = {
        i["name"].split("/")[-1].split(":")[0]: i["digest"] for i in build["results"]["images"]
    }
    assert pushed["hello"] == next(i.digest for i in w.builds[1].images if "/hello:" in i.name)
    service = json.loads(
        w.gcloud(ADMIN, "run", "services", "describe", "hello", "--format=json").stdout
    )
    assert service["status"]["latestReadyRevisionName"] == w.revisions[1]
    assert service["spec"]["template"]["spec"]["containers"][0]["image"].endswith(pushed["hello"])
    revisions = json.loads(
        w.gcloud(ADMIN, "run", "revisions", "list", "--service", "hello", "--format=json").stdout
    )
    assert {r["metadata"]["name"] for r in revisions} >= set(w.revisions)
    listed = json.loads(w.gcloud(ADMIN, "run", "services", "list", "--format=json").stdout)
    assert [s["metadata"]["name"] for s in listed] == ["hello"]


def test_a_users_push_to_the_registry_is_refused(built: World, tmp_path: Path) -> None:
    w = built
    registry = w.project.registry
    token = w.project.team.api(ALICE).credentials.token()
    config = ["--config", str(tmp_path)]
    login = subprocess.run(
        ["docker", *config, "login", "-u", "oauth2accesstoken", "--password-stdin", registry],
        input=token,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **w.engine.env()},
    )
    assert login.returncode == 0, login.stderr  # she may sign in (and pull)
    mine = f"{registry}/acme-ml/mlplane/hello:alice"
    w.engine.docker("tag", f"{registry}/acme-ml/mlplane/hello:latest", mine)
    push = subprocess.run(
        ["docker", *config, "push", mine],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **w.engine.env()},
    )
    assert push.returncode != 0
    assert "artifactregistry.repositories.uploadArtifacts" in push.stderr + push.stdout
    pull = subprocess.run(
        ["docker", *config, "pull", f"{registry}/acme-ml/mlplane/hello:latest"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **w.engine.env()},
    )
    assert pull.returncode == 0, pull.stderr


# -- the process images run the process's instances ------------------------------------------

JOB = """\
import os, sys
print(f"job python {sys.executable}")
out = os.environ["MLPLANE_OUTPUT_DIR"]  # the VM's own disk (locally: the agent's, mounted)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "done.txt"), "w") as f:
    f.write("done")
"""


def pushed(w: World, name: str) -> str:
    return next(i.digest for i in w.builds[-1].images if f"/{name}:" in i.name)


def test_a_training_vm_runs_in_the_training_image(built: World, tmp_path: Path) -> None:
    from mlplane.workflows import training as T

    w = built
    team = w.project.team
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "train.toml").write_text('name = "inimage"\nentrypoint = "job.py"\n')
    spec = T.load_spec(tmp_path / "train.toml")
    digest = pushed(w, "training")
    with team.acting(ALICE):
        s = team.session(ALICE)
        # the instance names the image as on Google: Artifact Registry's name, by digest
        body = T.training_instance(s, spec, tmp_path, s.principal)
        items = {i.key: i.value for i in body.metadata.items} if body.metadata else {}
        image = f"us-central1-docker.pkg.dev/acme-ml/mlplane/training@{digest}"
        assert items["mlplane-image"] == image
        assert "docker run --rm --network host --name workload" in items["startup-script"]
        run = T.run_remote(s, spec, tmp_path, lambda *_: None)
        assert T.wait(s, run, 300) == 0
        log = T.log_path(s, run.instance).read_text()
    # the agent pulled it from the local registry and ran the job in it, as training-adhoc
    assert "Pulling from acme-ml/mlplane/training" in log and digest in log, log
    assert "job python /opt/mlplane/venv/bin/python" in log, log
    agent_log = (w.root / ".mlplane" / "agent" / "agent.log").read_text()
    adhoc = s.email("training-adhoc")
    assert f"delete instance/{run.instance} by serviceAccount:{adhoc}" in agent_log


def test_an_image_the_registry_does_not_hold_runs_as_a_process(
    built: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplane.workflows import training as T

    w = built
    team = w.project.team
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "train.toml").write_text('name = "noimage"\nentrypoint = "job.py"\n')
    missing = "us-central1-docker.pkg.dev/acme-ml/mlplane/training@sha256:" + "0" * 64
    monkeypatch.setattr(T, "process_image", lambda session, name: missing)
    with team.acting(ALICE):
        s = team.session(ALICE)
        run = T.run_remote(s, T.load_spec(tmp_path / "train.toml"), tmp_path, lambda *_: None)
        assert T.wait(s, run, 300) == 0
        log = T.log_path(s, run.instance).read_text()
    assert "job python /" in log and "/opt/mlplane/venv" not in log, log  # the agent's Python
    agent_log = (w.root / ".mlplane" / "agent" / "agent.log").read_text()
    assert f"instance {run.instance}: {missing} is not in the registry" in agent_log


def test_serving_replicas_run_in_the_serving_image(built: World, tmp_path: Path) -> None:
    from mlplane.examples.sentiment.train import train
    from mlplane.workflows.process_image import revision_image
    from mlplane.workflows.quickstart import predict
    from mlplane.workflows.serving import DeployRequest, deploy, undeploy
    from tests.local.local_helpers import processes

    w = built
    team = w.project.team
    artifact = Path(train(tmp_path / "model", seed=3, progress=lambda *_: None))  # outside
    digest = pushed(w, "serving")
    with team.acting(ALICE):
        s = team.session(ALICE)
        result = deploy(s, DeployRequest("sentiment", "r1", artifact), lambda *_: None)
        try:
            status, body = predict(result.revision_url + "predict")
            assert status == 200 and "predictions" in body, body
            template = team.api(ADMIN).call(
                "compute.instanceTemplates.get",
                {"project": "acme-ml", "instanceTemplate": "sentiment-r1-tmpl"},
            )
            items = {i["key"]: i["value"] for i in template["properties"]["metadata"]["items"]}
            assert items["mlplane-image"] == (
                f"us-central1-docker.pkg.dev/acme-ml/mlplane/serving@{digest}"
            )
            # a re-run of this revision's deploy names the image it was deployed with
            assert revision_image(s, "sentiment", "r1") == items["mlplane-image"]
            replicas = [v.name for v in processes(team) if v.group == "sentiment-r1-mig"]
            assert replicas
            for name in replicas:
                ids = w.engine.docker(
                    "ps", "--filter", f"label=dev.mlplane.workload={name}", "--format", "{{.ID}}"
                ).stdout.split()
                assert len(ids) == 1, (name, ids)
                ran = w.engine.docker("inspect", "--format", "{{.Config.Image}}", ids[0])
                local = f"{w.project.registry}/acme-ml/mlplane/serving@{digest}"
                assert ran.stdout.strip() == local, name
        finally:
            undeploy(s, "sentiment", "r1", lambda *_: None)
