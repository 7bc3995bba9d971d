"""The Cloud Build configs of the operational model's triggers.

Each trigger runs one step: mlplane itself (`mlplane ci step TRIGGER ...`) in the project's
mlplane image, as the trigger's service account, with the trigger's arguments as Cloud Build
substitutions (`_SERVICE`, `_REVISION`, ...). Builds log to Cloud Logging only (a build that
runs as a user-specified service account must). The local agent runs the same config: the
`mlplane` entrypoint as a process of its own interpreter.

`build-images` is the one trigger with more steps (`images_steps`): mlplane's prepare step
stages the build contexts (the Debian base, the pinned wheels), then a docker build and a docker
push per image (`gcr.io/cloud-builders/docker`), then mlplane's step deploys what changed: new
Cloud Run revisions of the auxiliary services, a reset of the auxiliary instances.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlplane.model.images import BASE, DIRECTORY, DOCKER_BUILDER

ENTRYPOINT = "mlplane"
SUBSTITUTION = re.compile(r"\$(?:\{([A-Z_][A-Z0-9_]*)\}|([A-Z_][A-Z0-9_]*))")
USER_SUBSTITUTION = re.compile(r"_[A-Z0-9_]+")


@dataclass(frozen=True)
class TriggerStep:
    """The step of one trigger: its arguments (with substitutions) and their defaults."""

    args: tuple[str, ...]
    defaults: Mapping[str, str] = field(default_factory=dict)
    needs_source: bool = False  # runs code from the project's source (a recorded snapshot)


STEPS: Mapping[str, TriggerStep] = {
    "deploy": TriggerStep(
        (
            "ci", "step", "deploy", "--service", "$_SERVICE", "--revision", "$_REVISION",
            "--artifact", "$_ARTIFACT", "--traffic", "$_TRAFFIC", "--min", "$_MIN_REPLICAS",
            "--max", "$_MAX_REPLICAS", "--bootstrap", "$_BOOTSTRAP",
        ),
        {"_SERVICE": "", "_REVISION": "", "_ARTIFACT": "", "_TRAFFIC": "100",
         "_MIN_REPLICAS": "1", "_MAX_REPLICAS": "3", "_BOOTSTRAP": "false"},
    ),
    "undeploy": TriggerStep(
        ("ci", "step", "undeploy", "--service", "$_SERVICE", "--revision", "$_REVISION"),
        {"_SERVICE": "", "_REVISION": ""},
    ),
    "train": TriggerStep(("ci", "step", "train", "--spec", "$_SPEC"), {"_SPEC": ""}, True),
    "build-images": TriggerStep(("ci", "step", "build-images"), {}, True),
}  # fmt: skip


def mlplane_image(project: str, region: str) -> str:
    """Where the project's mlplane image lives in Artifact Registry."""
    return f"{region}-docker.pkg.dev/{project}/mlplane/mlplane:latest"


def step_of(trigger: str) -> TriggerStep:
    try:
        return STEPS[trigger]
    except KeyError:
        raise ValueError(
            f"trigger '{trigger}' has no build step (known: {', '.join(sorted(STEPS))})"
        ) from None


def images_steps(
    repository: str, images: tuple[str, ...], runner: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """The steps of `build-images` before mlplane's own (prepare, then build and push each
    image into `repository` = HOST/PROJECT/REPOSITORY), and the images the build pushes."""
    steps: list[dict[str, Any]] = [
        {
            "id": "prepare",
            "name": runner,
            "entrypoint": ENTRYPOINT,
            "args": [
                "ci",
                "step",
                "build-images",
                "--prepare",
                "--repository",
                repository,
                "--images",
                ",".join(images),
            ],
        }
    ]
    pushed = []
    for name in images:
        ref = f"{repository}/{name}"
        build = ["build", "--network", "host", "-t", f"{ref}:$BUILD_ID", "-t", f"{ref}:latest"]
        if name != BASE:
            build += ["--build-arg", f"BASE={repository}/{BASE}:$BUILD_ID"]
        steps.append({"id": f"build-{name}", "name": DOCKER_BUILDER,
                      "args": [*build, f"{DIRECTORY}/{name}"]})  # fmt: skip
        steps.append({"id": f"push-{name}", "name": DOCKER_BUILDER,
                      "args": ["push", "--all-tags", ref]})  # fmt: skip
        pushed.append(f"{ref}:$BUILD_ID")
    return steps, pushed


def build_config(
    trigger: str,
    project: str,
    region: str,
    service_account: str,
    image: str | None = None,
    *,
    repository: str = "",
    images: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The trigger's Build (as in `cloudbuild.yaml`, in the API's JSON); `image` runs the step
    (default: the project's mlplane image, `[ci] image`'s default). For `build-images`,
    `repository` (HOST/PROJECT/REPOSITORY) and `images` (model.images.build_order) give the
    docker steps; without them it is mlplane's step alone."""
    step = step_of(trigger)
    runner = image or mlplane_image(project, region)
    args = list(step.args)
    steps: list[dict[str, Any]] = []
    pushed: list[str] = []
    if trigger == "build-images" and repository and images:
        steps, pushed = images_steps(repository, images, runner)
        args += ["--repository", repository, "--tag", "$BUILD_ID"]
    config: dict[str, Any] = {
        "steps": [
            *steps,
            {
                "id": trigger,
                "name": runner,
                "entrypoint": ENTRYPOINT,
                "args": args,
            },
        ],
        "substitutions": dict(step.defaults),
        "serviceAccount": f"projects/{project}/serviceAccounts/{service_account}",
        "options": {"logging": "CLOUD_LOGGING_ONLY", "substitutionOption": "ALLOW_LOOSE"},
        "timeout": "3600s",
        "tags": ["mlplane", trigger],
    }
    if pushed:
        config["images"] = pushed
    return config


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Expand `$NAME` and `${NAME}` as Cloud Build does (unknown names become empty)."""

    def repl(m: re.Match[str]) -> str:
        return values.get(m.group(1) or m.group(2), "")

    return SUBSTITUTION.sub(repl, text.replace("$$", "\0")).replace("\0", "$")
