"""The Cloud Build configs of the operational model's triggers.

Each trigger runs one step: mlplane itself (`mlplane ci step TRIGGER ...`) in the project's
mlplane image, as the trigger's service account, with the trigger's arguments as Cloud Build
substitutions (`_SERVICE`, `_REVISION`, ...). Builds log to Cloud Logging only (a build that
runs as a user-specified service account must). The local agent runs the same config: the
`mlplane` entrypoint as a process of its own interpreter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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


def build_config(
    trigger: str, project: str, region: str, service_account: str, image: str | None = None
) -> dict[str, Any]:
    """The trigger's Build (as in `cloudbuild.yaml`, in the API's JSON); `image` runs the step
    (default: the project's mlplane image, `[ci] image`'s default)."""
    step = step_of(trigger)
    return {
        "steps": [
            {
                "id": trigger,
                "name": image or mlplane_image(project, region),
                "entrypoint": ENTRYPOINT,
                "args": list(step.args),
            }
        ],
        "substitutions": dict(step.defaults),
        "serviceAccount": f"projects/{project}/serviceAccounts/{service_account}",
        "options": {"logging": "CLOUD_LOGGING_ONLY", "substitutionOption": "ALLOW_LOOSE"},
        "timeout": "3600s",
        "tags": ["mlplane", trigger],
    }


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Expand `$NAME` and `${NAME}` as Cloud Build does (unknown names become empty)."""

    def repl(m: re.Match[str]) -> str:
        return values.get(m.group(1) or m.group(2), "")

    return SUBSTITUTION.sub(repl, text.replace("$$", "\0")).replace("\0", "$")
