"""Identity as Google does it: every way around the `deploy` and `train` triggers that an
earlier version allowed is refused (exit 3 or 403), with nothing created and nothing recorded;
the sanctioned paths still work (see test_workflow_serving, test_workflow_ci_train)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlplane.cli.main import main
from mlplane.data.artifacts import ArtifactStore
from mlplane.workflows.ci import list_builds
from tests.harness import ADMIN
from tests.local.local_helpers import resources
from tests.workflows.conftest import LocalProject

SERVING_SA = "serviceAccount:mlplane-serving@acme-ml.iam.gserviceaccount.com"
TRAINING_SA = "serviceAccount:mlplane-training@acme-ml.iam.gserviceaccount.com"
EVIL = "gs://acme-ml-mlplane-artifacts/sentiment/evil/model.json"


@contextlib.contextmanager
def variables(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def snapshot(lp: LocalProject) -> tuple[object, ...]:
    """What the project holds: the agent's resources, recorded state, builds, bucket objects."""
    with lp.team.acting(ADMIN):
        bucket = ArtifactStore.open(lp.session.project_file).list(
            "gs://acme-ml-mlplane-artifacts/", recursive=True
        )
    return (
        resources(lp.team),
        sorted(str(k) for k in lp.session.store.load()),
        [b.id for b in list_builds(lp.session)],
        [o.name for o in bucket.objects],
    )


def cli(lp: LocalProject, *args: str) -> int:
    return main(["-f", str(lp.session.project_file), *args])


@pytest.fixture
def evil_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.json"
    path.write_text('{"weights": "forged"}')
    return path


def test_the_as_flag_is_refused(
    local_project: LocalProject, capsys: pytest.CaptureFixture[str], evil_file: Path
) -> None:
    lp = local_project
    before = snapshot(lp)
    deploy = ["serve", "deploy", "sentiment", "--revision", "x2", "--artifact", str(lp.v1)]
    assert cli(lp, *deploy, "--direct", "--as", "serving") == 3
    assert cli(lp, "artifacts", "cp", str(evil_file), EVIL, "--as=training") == 3
    err = capsys.readouterr().err
    assert "`--as` is refused" in err and "mlplane auth login" in err
    assert snapshot(lp) == before


def test_identity_variables_name_no_one(
    local_project: LocalProject, capsys: pytest.CaptureFixture[str], evil_file: Path
) -> None:
    lp = local_project
    before = snapshot(lp)
    deploy = ["serve", "deploy", "sentiment", "--revision", "x2", "--artifact", str(lp.v1)]
    with variables(MLPLANE_USER=SERVING_SA, MLPLANE_PRINCIPAL=SERVING_SA):
        assert cli(lp, *deploy, "--direct") == 3  # still alice, whom the model refuses
    assert "DENY user:alice@acme.com" in capsys.readouterr().err
    with variables(MLPLANE_PRINCIPAL=TRAINING_SA, MLPLANE_USER=TRAINING_SA):
        assert cli(lp, "artifacts", "cp", str(evil_file), EVIL) == 3
    err = capsys.readouterr().err
    assert "DENY user:alice@acme.com" in err and "CI trigger 'train'" in err
    assert snapshot(lp) == before


def test_impersonating_a_process_account_is_refused_as_on_google(
    local_project: LocalProject, capsys: pytest.CaptureFixture[str], evil_file: Path
) -> None:
    lp = local_project
    before = snapshot(lp)
    deploy = ["serve", "deploy", "sentiment", "--revision", "x2", "--artifact", str(lp.v1)]
    code = main(["-f", str(lp.session.project_file), "--impersonate-service-account", "serving",
                 *deploy, "--direct"])  # fmt: skip
    assert code == 3
    err = capsys.readouterr().err
    assert "impersonating mlplane-serving@acme-ml.iam.gserviceaccount.com refused" in err
    assert "iam.serviceAccounts.getAccessToken" in err and "CI trigger(s) deploy" in err
    code = main(["-f", str(lp.session.project_file), "--impersonate-service-account",
                 "mlplane-training@acme-ml.iam.gserviceaccount.com", "artifacts", "cp",
                 str(evil_file), EVIL])  # fmt: skip
    assert code == 3 and "refused" in capsys.readouterr().err
    assert snapshot(lp) == before


def test_a_forged_principal_header_is_ignored(local_project: LocalProject) -> None:
    """The token is the caller; a header that names someone else changes nothing."""
    from mlplane.apis.transport import Transport

    lp = local_project
    token = lp.team.api("alice@acme.com").credentials.token()
    url = f"{lp.team.endpoints.url('compute')}projects/acme-ml/global/healthChecks"
    body = {"name": "forged-hc", "type": "HTTP", "httpHealthCheck": {"port": 8080}}
    headers = {"Authorization": f"Bearer {token}", "X-Mlplane-Principal": SERVING_SA}
    resp = Transport().json("POST", url, body, headers)
    assert resp.status == 403 and "DENY user:alice@acme.com" in resp.body["error"]["message"]
    assert ("healthCheck", "forged-hc") not in resources(lp.team)


def test_the_signed_in_user_is_who_acts(
    local_project: LocalProject, capsys: pytest.CaptureFixture[str]
) -> None:
    lp = local_project
    assert cli(lp, "auth", "list") == 0
    out = capsys.readouterr().out
    assert "alice@acme.com" in out
    assert cli(lp, "iam", "check", "--principal", "alice@acme.com", "serving.invoke-triggers") == 0
