"""`--dry-run` for real, against the local agent: each mutating command prints the requests it
would send (checked against Google's discovery schemas, and against what the real command then
sends), and afterwards nothing has changed: the agent's resources, the state store and its
journal, the builds, the artifact bucket, the secrets, the chosen load-balancer port."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlplane.apis.request import Request
from mlplane.cli.main import main
from mlplane.data.artifacts import ArtifactStore
from mlplane.data.secrets import open_secrets
from mlplane.errors import PermissionDenied
from mlplane.workflows import dryrun, serving
from mlplane.workflows import notebooks as N
from mlplane.workflows import training as T
from mlplane.workflows.ci import list_builds
from mlplane.workflows.serving import DeployRequest
from mlplane.workflows.session import Session
from tests.dryrun_helpers import method_id, parse, wire
from tests.harness import ADMIN
from tests.local.local_helpers import resources
from tests.workflows.conftest import LocalProject

QUIET = lambda *_: None  # noqa: E731
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sentiment" / "train.toml"
BUCKET = "gs://acme-ml-mlplane-artifacts"


@contextlib.contextmanager
def recording(session: Session) -> Iterator[list[Request]]:
    """Every request `session`'s client sends inside the block."""
    sent: list[Request] = []
    api: Any = session.api
    api.on_request = sent.append
    try:
        yield sent
    finally:
        api.on_request = None


def snapshot(lp: LocalProject) -> dict[str, Any]:
    """Everything a command could change, read without changing it."""
    s = lp.session
    with lp.team.acting(ADMIN):
        bucket = ArtifactStore.open(s.project_file).list(f"{BUCKET}/", recursive=True)
        secrets = [(i.name, len(i.versions)) for i in open_secrets(s.project_file).list()]
    port = s.state_dir / "lb-port"
    return {
        "resources": sorted(resources(lp.team)),
        "state": {
            str(k): (r.stack, r.spec.model_dump_json(), r.version)
            for k, r in s.store.load().items()
        },
        "journal": [(i.id, i.status) for i in s.engine().journal.entries()],
        "builds": [b.id for b in list_builds(s)],
        "bucket": [(o.name, o.generation) for o in bucket.objects],
        "secrets": secrets,
        "lb-port": port.read_text() if port.exists() else None,
    }


def cli(lp: LocalProject, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command in-process: its exit code, stdout and stderr."""
    capsys.readouterr()
    code = main(["-f", str(lp.session.project_file), *args])
    out, err = capsys.readouterr()
    return code, out, err


def checked(lp: LocalProject, out: str) -> list[tuple[Request, str]]:
    """The printed requests with the discovery method each calls (bodies validated)."""
    return [(r, method_id(r, lp.team.endpoints)) for r in parse(out)]


def test_a_dry_run_chooses_no_load_balancer_port(
    local_project: LocalProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first deploy or bootstrap chooses the local front end's port and records it; a dry
    run shows one it could choose and records nothing."""
    lp = local_project
    before = snapshot(lp)
    assert before["lb-port"] is None
    code, out, _ = cli(lp, capsys, "serve", "bootstrap", "--dry-run")
    assert code == 0 and len(parse(out)) == 1
    with lp.team.acting("serving"):
        code, out, _ = cli(lp, capsys, "ci", "step", "deploy", "--bootstrap", "true", "--dry-run")
    assert code == 0
    methods = [mid for _, mid in checked(lp, out)]
    assert "compute.globalForwardingRules.insert" in methods
    assert "serviceusage.services.enable" in methods
    assert snapshot(lp) == before
    serving.frontend_stack(lp.session)  # the port, chosen as a first bootstrap would


def test_trigger_commands_print_the_trigger_run_and_send_nothing(
    local_project: LocalProject, capsys: pytest.CaptureFixture[str]
) -> None:
    lp = local_project
    before = snapshot(lp)
    deploy = ["sentiment", "--revision", "r1", "--artifact", str(lp.v1), "--traffic", "100"]
    for args in (
        ["serve", "deploy", *deploy, "--dry-run"],
        ["ci", "trigger", "deploy", *deploy, "--dry-run"],
        ["ci", "trigger", "--dry-run", "deploy", *deploy],
    ):
        code, out, _ = cli(lp, capsys, *args)
        assert code == 0, args
        [(req, mid)] = checked(lp, out)
        assert mid == "cloudbuild.projects.triggers.run"
        assert req.url.endswith("/cloudbuild/v1/projects/acme-ml/triggers/deploy:run")
        assert req.body == {
            "branchName": "main",
            "substitutions": {
                "_SERVICE": "sentiment", "_REVISION": "r1", "_ARTIFACT": str(lp.v1.resolve()),
                "_TRAFFIC": "100", "_MIN_REPLICAS": "1", "_MAX_REPLICAS": "3",
            },
        }  # fmt: skip
        assert out.startswith("# dry run as user:alice@acme.com: the requests below were NOT")
        assert "mlplane-serving@acme-ml.iam.gserviceaccount.com" in out
    code, out, _ = cli(lp, capsys, "serve", "bootstrap", "--dry-run")
    [(req, _)] = checked(lp, out)
    assert code == 0 and req.body["substitutions"] == {"_BOOTSTRAP": "true"}
    spec = lp.root / "train.toml"
    spec.write_text(EXAMPLE.read_text())
    code, out, _ = cli(lp, capsys, "ci", "trigger", "train", str(spec), "--dry-run")
    [(req, _)] = checked(lp, out)
    assert code == 0 and req.url.endswith("/triggers/train:run")
    assert req.body["substitutions"] == {"_SPEC": "train.toml"}
    assert snapshot(lp) == before


def test_bad_input_and_denials_fail_as_without_dry_run(
    local_project: LocalProject, capsys: pytest.CaptureFixture[str]
) -> None:
    lp = local_project
    before = snapshot(lp)
    deploy = ["serve", "deploy", "sentiment", "--revision", "r1", "--artifact"]
    for args, code in (
        ([*deploy, str(lp.v1), "--traffic", "0"], 2),
        ([*deploy, str(lp.root / "no-such-model")], None),
        (["serve", "undeploy", "sentiment", "--revision", "nope"], 2),
        (["ci", "trigger", "train", str(EXAMPLE)], 2),  # outside the project's source
        (["ci", "trigger", "build-images"], 2),  # not manual
        ([*deploy, str(lp.v1), "--direct"], 3),  # the model refuses a user's direct apply
    ):
        dry, out, dry_err = cli(lp, capsys, *args, "--dry-run")
        real, _, real_err = cli(lp, capsys, *args)
        assert dry == real != 0 and (code is None or real == code), args
        assert out == "" and dry_err == real_err, args
    assert snapshot(lp) == before


def test_direct_deploy_dry_run_for_an_admin_is_what_apply_would_send(
    local_project: LocalProject, capsys: pytest.CaptureFixture[str]
) -> None:
    lp = local_project
    before = snapshot(lp)
    with lp.team.acting(ADMIN):
        code, out, _ = cli(lp, capsys, "serve", "deploy", "direct", "--revision", "r1",
                        "--artifact", str(lp.v1), "--direct", "--dry-run")  # fmt: skip
    assert code == 0
    methods = [mid for _, mid in checked(lp, out)]
    for mid in (
        "compute.instanceTemplates.insert",
        "compute.instanceGroupManagers.insert",
        "compute.instanceGroups.setNamedPorts",
        "compute.backendServices.insert",
    ):
        assert mid in methods
    assert "# sent: GET " in out  # the plan read what exists, and says so
    assert snapshot(lp) == before


def test_build_steps_dry_run_is_what_the_steps_then_send(local_project: LocalProject) -> None:
    """As the serving account (a token the admin got, as an operator holding that identity
    would): each step's dry run sends nothing, and its requests are the mutating requests the
    real step then makes (but request ids, fingerprints and server-assigned config ids)."""
    lp = local_project
    serving.frontend_stack(lp.session)  # the front end's port, chosen (the dry run shows it)
    s = lp.team.session("serving")
    sent: list[Request] = []
    real = lp.team.session("serving")
    real.api.on_request = sent.append  # type: ignore[attr-defined]

    def rehearsed_then_real(dry: dryrun.DryRun, run: Any) -> None:
        assert snapshot(lp) == before
        assert dry.log.requests and all(r.mutates for r in dry.log.requests)
        for req in dry.log.requests:
            method_id(req, lp.team.endpoints)
        sent.clear()
        run()
        assert wire(dry.log.requests) == wire(sent)

    before = snapshot(lp)
    dry = dryrun.bootstrap_step(s)
    rehearsed_then_real(dry, lambda: serving.bootstrap_step(real, QUIET))

    r1 = DeployRequest("steps", "r1", lp.v1)
    before = snapshot(lp)
    rehearsed_then_real(dryrun.deploy_step(s, r1), lambda: serving.deploy_step(real, r1, QUIET))

    r2 = DeployRequest("steps", "r2", lp.v2, traffic=10)
    before = snapshot(lp)
    dry = dryrun.deploy_step(s, r2)
    assert dry.log.render().count("update urlMap/mlplane-urlmap") == 2  # own route, then 10 %
    rehearsed_then_real(dry, lambda: serving.deploy_step(real, r2, QUIET))

    before = snapshot(lp)
    dry = dryrun.undeploy_step(s, "steps", "r1")
    rehearsed_then_real(dry, lambda: serving.undeploy_step(real, "steps", "r1", QUIET))
    serving.undeploy_step(real, "steps", "r2", QUIET)


def test_ci_step_dry_run_on_the_command_line(
    local_project: LocalProject, capsys: pytest.CaptureFixture[str]
) -> None:
    lp = local_project
    before = snapshot(lp)
    with lp.team.acting("serving"):
        code, out, _ = cli(lp, capsys, "ci", "step", "deploy", "--service", "cl", "--revision",
                        "r1", "--artifact", str(lp.v1), "--dry-run")  # fmt: skip
    assert code == 0
    assert out.startswith("# dry run as serviceAccount:mlplane-serving@acme-ml")
    assert "compute.instanceGroupManagers.insert" in [mid for _, mid in checked(lp, out)]
    with lp.team.acting("alice@acme.com"):  # the step's identity is the build's, not a user's
        code, out, _ = cli(lp, capsys, "ci", "step", "deploy", "--service", "cl", "--revision",
                        "r1", "--artifact", str(lp.v1), "--dry-run")  # fmt: skip
    assert code == 3 and out == ""
    spec = lp.root / "train.toml"
    spec.write_text(EXAMPLE.read_text())
    with lp.team.acting("training"):
        code, out, _ = cli(lp, capsys, "ci", "step", "train", "--spec", str(spec), "--dry-run")
    assert code == 0
    post, put = parse(out)
    assert post.url == (
        "https://storage.googleapis.com/upload/storage/v1/b/acme-ml-mlplane-artifacts/o"
        "?uploadType=resumable&ifGenerationMatch=0"
    )
    assert post.body == {"name": "sentiment/<BUILD_ID>/<OUTPUT_FILE>"}
    assert put.http_method == "PUT"
    assert snapshot(lp) == before


def test_engine_commands_dry_run(
    local_project: LocalProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """train run --remote, train cancel and reap, notebook create and delete: as the user."""
    lp = local_project
    before = snapshot(lp)
    code, out, _ = cli(lp, capsys, "train", "run", str(EXAMPLE), "--remote", "--dry-run")
    assert code == 0
    [(req, mid)] = checked(lp, out)
    assert mid == "compute.instances.insert" and req.body["name"].startswith("train-sentiment-")
    assert req.body["serviceAccounts"][0]["email"].startswith("mlplane-training-adhoc@")
    assert f"# sent: GET {lp.team.endpoints.url('compute')}projects/acme-ml" in out
    code, out, _ = cli(lp, capsys, "train", "run", str(EXAMPLE), "--dry-run")
    assert code == 2 and out == ""  # a local run sends nothing: the flag is for --remote
    code, out, _ = cli(lp, capsys, "train", "reap", "--dry-run")
    assert code == 0 and parse(out) == [] and "# no request would be sent" in out
    code, _, _ = cli(lp, capsys, "train", "cancel", "train-nope-000000", "--dry-run")
    assert code == 2
    pytest.importorskip("jupyterlab", reason="the notebook extra (jupyterlab) is not installed")
    code, out, _ = cli(lp, capsys, "notebook", "create", "lab9", "--dry-run")
    assert code == 0
    [(req, mid)] = checked(lp, out)
    assert mid == "compute.instances.insert" and req.body["name"] == "nb-alice-lab9"
    assert not (lp.root / ".mlplane" / "notebooks" / "nb-alice-lab9").exists()  # no token file
    code, _, _ = cli(lp, capsys, "notebook", "delete", "lab9", "--dry-run")
    assert code == 2  # there is none to delete
    assert snapshot(lp) == before


def test_cancel_dry_run_names_the_delete_and_leaves_the_vm(
    local_project: LocalProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lp = local_project
    s = lp.session
    d = tmp_path / "long"
    d.mkdir()
    (d / "job.py").write_text("import time\ntime.sleep(60)\n")
    (d / "train.toml").write_text('name = "long"\nentrypoint = "job.py"\n')
    run = T.run_remote(s, T.load_spec(d / "train.toml"), d, QUIET)
    try:
        before = snapshot(lp)
        code, out, _ = cli(lp, capsys, "train", "cancel", run.instance, "--dry-run")
        assert code == 0
        [(req, mid)] = checked(lp, out)
        assert mid == "compute.instances.delete" and f"/instances/{run.instance}?" in req.url
        assert snapshot(lp) == before and T.instance_exists(s, run.instance)
        bob = lp.fresh_session("bob@acme.com")
        with pytest.raises(PermissionDenied, match="only its owner"):
            dryrun.train_cancel(bob, run.instance)
        dry = dryrun.train_cancel(s, run.instance)
        with recording(s) as sent:
            T.cancel(s, run.instance)
        assert wire(dry.log.requests) == wire(sent) != []
    finally:
        if T.instance_exists(s, run.instance):
            T.cancel(s, run.instance)


def test_notebook_delete_dry_run_is_what_delete_sends(local_project: LocalProject) -> None:
    pytest.importorskip("jupyterlab", reason="the notebook extra (jupyterlab) is not installed")
    lp = local_project
    s = lp.session
    info = N.create(s, "dryd")
    try:
        before = snapshot(lp)
        dry = dryrun.notebook_delete(s, "dryd")
        assert snapshot(lp) == before and N.token_of(s, info.instance)
        [(req, mid)] = [(r, method_id(r, lp.team.endpoints)) for r in dry.log.requests]
        assert mid == "compute.instances.delete" and f"/instances/{info.instance}?" in req.url
        with pytest.raises(PermissionDenied, match="only its owner"):
            dryrun.notebook_delete(lp.fresh_session("bob@acme.com"), "dryd")
        with recording(s) as sent:
            N.delete(s, "dryd")
        assert wire(dry.log.requests) == wire(sent)
    finally:
        if any(n.instance == info.instance for n in N.list_notebooks(s)):
            N.delete(s, "dryd")


def test_data_commands_dry_run(
    local_project: LocalProject, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lp = local_project
    src = tmp_path / "blob.bin"
    src.write_bytes(b"\x00abc" * 1000)
    dst = f"{BUCKET}/dry/blob.bin"
    before = snapshot(lp)
    code, _, _ = cli(lp, capsys, "artifacts", "cp", str(src), dst, "--dry-run")
    assert code == 3  # a user may not write the artifact bucket: denied, as the copy would be
    with lp.team.acting(ADMIN):
        code, out, _ = cli(lp, capsys, "artifacts", "cp", str(src), dst, "--dry-run")
        assert code == 0
        post, put = parse(out)
        assert post.url == ("https://storage.googleapis.com/upload/storage/v1/b/"
                            "acme-ml-mlplane-artifacts/o?uploadType=resumable")  # fmt: skip
        assert post.body == {"name": "dry/blob.bin"}
        assert dict(put.headers)["Content-Range"] == "bytes 0-3999/4000"
        assert put.media is not None and put.media.startswith(f"<4000 bytes from {src}, md5 ")
        code, out, err = cli(lp, capsys, "artifacts", "rm", dst, "--dry-run")
        assert code == 1 and out == "" and "no such object" in err  # fails as rm would
        ArtifactStore.open(lp.session.project_file).upload(src, dst)
        exists = snapshot(lp)
        code, out, err = cli(lp, capsys, "artifacts", "cp", str(src), dst, "--dry-run",
                             "--if-generation-match", "0")  # fmt: skip
        assert code == 1 and out == "" and "precondition failed (HTTP 412)" in err
        code, out, _ = cli(lp, capsys, "artifacts", "rm", dst, "--dry-run")
        [delete] = parse(out)
        assert code == 0 and delete.http_method == "DELETE"
        storage = "https://storage.googleapis.com/storage/v1/b/acme-ml-mlplane-artifacts/o/"
        assert delete.url == storage + "dry%2Fblob.bin?prettyPrint=false"
        assert snapshot(lp) == exists
        ArtifactStore.open(lp.session.project_file).delete(dst)
    assert snapshot(lp) == before
    secret = tmp_path / "value"
    secret.write_bytes(b"sk-do-not-print-4242")
    code, out, _ = cli(lp, capsys, "secrets", "set", "dry-key", "--from-file", str(secret),
                    "--dry-run")  # fmt: skip
    assert code == 0 and "sk-do-not-print" not in out
    create, add = parse(out)
    assert (
        create.url
        == "https://secretmanager.googleapis.com/v1/projects/acme-ml/secrets?secretId=dry-key"
    )
    assert add.url.endswith("/secrets/dry-key:addVersion")
    assert add.body["payload"]["data"] == "<20 bytes, base64-encoded: not shown>"
    disable = ("secrets", "disable", "dry-key", "--version", "1", "--dry-run")
    code, out, err = cli(lp, capsys, *disable)
    assert code == 3 and out == "" and "secretmanager.versions.disable" in err  # as disable
    with lp.team.acting(ADMIN):
        code, out, _ = cli(lp, capsys, *disable)
    [request] = parse(out)
    assert code == 0 and request.url.endswith("/secrets/dry-key/versions/1:disable")
    assert request.body == {}
    code, _, _ = cli(lp, capsys, "secrets", "set", "bad/name", "--from-file", str(secret),
                  "--dry-run")  # fmt: skip
    assert code == 2
    assert snapshot(lp) == before
