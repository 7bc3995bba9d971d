"""build-images without a Docker engine: the build runs as the cicd account, says which steps it
skipped and why, and changes nothing; it builds its branch only; its steps run by a user are
refused with the trigger named."""

from __future__ import annotations

import io
from contextlib import redirect_stderr

import pytest

from mlplane.cli.main import main
from mlplane.errors import ConfigError
from mlplane.providers.errors import InvalidRequest
from mlplane.workflows.ci import list_builds, run_on_branch, run_trigger, trigger_call
from tests.cicd.conftest import ALICE, CicdProject

QUIET = lambda *_: None  # noqa: E731


def test_build_images_says_what_it_skipped_and_changes_nothing(
    no_engine_project: CicdProject,
) -> None:
    cp = no_engine_project
    session = cp.team.session(ALICE)
    lines: list[str] = []
    build = run_on_branch(session, "build-images", "main", lines.append)
    assert (build.status, build.invoker, build.runs_as) == ("SUCCESS", ALICE, session.email("cicd"))
    assert build.detail.startswith("skipped 12 steps (build-base, push-base, build-mlplane")
    assert "needs a Docker engine" in build.detail and build.images == ()
    text = "\n".join(lines)
    assert "prepare: skipped (the image builds will be too)" in text
    assert "deploy: skipped: no image was built" in text
    api = cp.team.api(ALICE)
    got = api.call("cloudbuild.projects.builds.get", {"projectId": "acme-ml", "id": build.id})
    statuses = {s["id"]: s["status"] for s in got["steps"]}
    assert statuses["build-hello"] == "CANCELLED" and statuses["build-images"] == "SUCCESS"
    assert got["results"]["images"] == [] and got["images"][-1].endswith("/hello:$BUILD_ID")


def test_it_builds_its_branch_only_and_is_not_manual(no_engine_project: CicdProject) -> None:
    session = no_engine_project.team.session(ALICE)
    with pytest.raises(
        ConfigError, match=r"--branch: .*runs on pushes to \^main\$ only.*'feature'"
    ):
        run_on_branch(session, "build-images", "feature", QUIET)
    params, body = trigger_call(session, "build-images", {}, "feature")  # Cloud Build refuses too
    with pytest.raises(InvalidRequest, match=r"runs on pushes to \^main\$ only.*'feature'"):
        session.api.call("cloudbuild.projects.triggers.run", params, body)
    with pytest.raises(ConfigError, match="is not manual"):
        run_trigger(session, "build-images", {}, QUIET)
    with pytest.raises(ConfigError, match="is manual"):
        run_on_branch(session, "train", "main", QUIET)


def test_its_steps_run_by_a_user_are_refused_naming_the_trigger(
    no_engine_project: CicdProject,
) -> None:
    cp = no_engine_project
    err = io.StringIO()
    with cp.team.acting(ALICE), redirect_stderr(err):
        code = main(
            [
                "-f",
                str(cp.team.project_file),
                "ci",
                "step",
                "build-images",
                "--repository",
                f"{cp.registry}/acme-ml/mlplane",
                "--tag",
                "x",
            ]
        )
    assert code == 3
    message = err.getvalue()
    assert "run.services.get" in message and "CI trigger 'build-images'" in message


def test_a_dry_run_shows_the_trigger_run_and_sends_nothing(
    no_engine_project: CicdProject, capsys: pytest.CaptureFixture[str]
) -> None:
    cp = no_engine_project
    session = cp.team.session(ALICE)
    before = len(list_builds(session))
    with cp.team.acting(ALICE):
        argv = ["-f", str(cp.team.project_file), "ci", "run", "build-images", "--branch", "main"]
        code = main([*argv, "--dry-run"])
        out = capsys.readouterr().out
        assert code == 0
        assert "POST " in out and "/triggers/build-images:run" in out and '"main"' in out
        assert len(list_builds(session)) == before  # nothing ran
        argv[-1] = "feature"
        assert main([*argv, "--dry-run"]) == 2
        assert "runs on pushes to ^main$ only, not 'feature'" in capsys.readouterr().err
