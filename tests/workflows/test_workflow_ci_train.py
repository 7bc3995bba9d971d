"""The CI trigger `train` persists a model with its checksums, as the training service account;
`serve deploy` serves it from gs://, fetched by each replica as serving-runtime; a user's own run
cannot write the artifact bucket."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from mlplane.data.artifacts import ArtifactStore
from mlplane.errors import ConfigError
from mlplane.providers.local.agent.warm_pool import REPLICA_LAUNCHER
from mlplane.workflows import training as T
from mlplane.workflows.ci import list_builds
from mlplane.workflows.quickstart import predict
from mlplane.workflows.serving import DeployRequest, deploy, undeploy
from tests.local.local_helpers import wait_until
from tests.workflows.conftest import LocalProject
from tests.workflows.test_replica_launcher import cmdline, launcher_pid, ppid, replica

QUIET = lambda *_: None  # noqa: E731
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sentiment" / "train.toml"


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def project_spec(lp: LocalProject) -> Path:
    """The example's training spec, in the project's own source (what `train` builds run)."""
    target = lp.root / "examples" / "sentiment"
    if not target.exists():
        shutil.copytree(EXAMPLE.parent, target)
    return target / "train.toml"


def test_ci_train_persists_with_checksums_and_serve_deploys_it(local_project: LocalProject) -> None:
    lp = local_project
    s = lp.session
    run = T.run_ci(s, project_spec(lp), QUIET)
    build = next(b for b in list_builds(s) if b.id == run.build_id)
    assert (build.trigger, build.status) == ("train", "SUCCESS")
    assert (build.invoker, build.runs_as) == ("alice@acme.com", s.email("training"))
    # the code ran from a snapshot of the project stored with the build, recorded by hash
    assert build.source.startswith("snapshot sha256:") and len(build.source.split(":")[1]) >= 64
    assert run.prefix == f"gs://acme-ml-mlplane-artifacts/sentiment/{run.build_id}/"
    # every object the build's identity wrote, from the store's own audit log
    names = {uri.rsplit("/", 1)[1] for uri, *_ in run.objects}
    assert {"model.json", "checksums.json"} <= names
    assert {o.uri for o in build.objects} == {uri for uri, *_ in run.objects}
    store = ArtifactStore.open(s.project_file)  # as alice: she may read the bucket
    for uri, size, md5, crc in run.objects:
        data = store.read_bytes(uri)
        assert uri.startswith(run.prefix) and size == len(data)
        assert md5 == base64.b64encode(hashlib.md5(data).digest()).decode()
        assert crc == base64.b64encode(crc32c(data).to_bytes(4, "big")).decode()

    launcher = wait_until(lambda: launcher_pid(lp), 20, "the replica launcher")
    time.sleep(1.0)  # it is ready once it has imported the fetch and the model server
    result = deploy(s, DeployRequest("iota", "r1", run.prefix), QUIET)
    status, body = predict(result.revision_url + "predict")
    assert status == 200 and json.loads(body)["model"]["name"] == "sentiment"
    # the replica fetched the model as serving-runtime, then became the server in the same
    # process: forked warm (the launcher's command line, its parent the launcher)
    pid, _ = replica(lp, "iota-r1-mig")
    assert ppid(pid) == launcher and REPLICA_LAUNCHER.encode() in cmdline(pid)
    # cold (no launcher), it is one interpreter too: fetch's, the server run in it, not exec'd
    os.kill(launcher, signal.SIGKILL)
    cold, _ = replica(lp, "iota-r1-mig", old=pid)
    assert b"\0-m\0mlplane.data.fetch\0" in cmdline(cold)
    wait_until(lambda: predict(result.revision_url + "predict")[0] == 200, 15, "the cold one")
    assert b"\0-m\0mlplane.data.fetch\0" in cmdline(cold)  # still that process, serving
    undeploy(s, "iota", "r1", QUIET)


def test_a_spec_outside_the_project_source_is_refused(local_project: LocalProject) -> None:
    builds = len(list_builds(local_project.session))
    with pytest.raises(ConfigError, match="inside that directory"):
        T.run_ci(local_project.session, EXAMPLE, QUIET)
    assert len(list_builds(local_project.session)) == builds


def test_a_users_own_run_cannot_write_the_artifact_bucket(
    local_project: LocalProject, tmp_path: Path
) -> None:
    lp = local_project
    job = tmp_path / "job.py"
    job.write_text(
        "import sys\n"
        "from mlplane.data.artifacts import ArtifactStore\n"
        "from mlplane.errors import PermissionDenied\n"
        "try:\n"
        "    store = ArtifactStore.open()\n"
        "    store.write_bytes('gs://acme-ml-mlplane-artifacts/x/model.bin', b'weights')\n"
        "except PermissionDenied as exc:\n"
        "    print(exc)\n"
        "    sys.exit(42)\n"
    )
    (tmp_path / "train.toml").write_text('name = "sneaky"\nentrypoint = "job.py"\n')
    spec = T.load_spec(tmp_path / "train.toml")
    code, _ = T.run_local(lp.session, spec, tmp_path)
    assert code == 42  # denied, as the model says: only the trigger `train` persists


def test_a_prefix_without_a_model_is_refused_before_anything_is_created(
    local_project: LocalProject,
) -> None:
    lp = local_project
    builds = len(list_builds(lp.session))
    with pytest.raises(ConfigError) as info:
        deploy(
            lp.session,
            DeployRequest("kappa2", "r1", "gs://acme-ml-mlplane-artifacts/nothing/"),
            QUIET,
        )
    assert "no model.json" in str(info.value)
    assert len(list_builds(lp.session)) == builds
