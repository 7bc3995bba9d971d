"""A training spec (`train.toml`): what to run, with what, on what machine."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from mlplane.model.operational import Spec
from mlplane.model.secret_refs import looks_like_credential, parse_ref

_NAME = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TrainingSpec(Spec):
    """`entrypoint` is a Python module (`python -m`) or a `.py` script path (relative to the
    spec file). `{output_dir}` in `args` is replaced by where the run writes its outputs.

    `env` holds plain settings (kept in clear, as an instance's metadata is on Google);
    `secrets` maps a variable to a secret, `SECRET` or `SECRET:VERSION`, resolved when the job
    starts as the identity it runs as: only the reference is ever stored."""

    name: str
    entrypoint: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = {}
    secrets: dict[str, str] = {}
    machine_type: str = "e2-standard-4"
    max_run_duration_sec: int = Field(default=3600, ge=30, le=7 * 24 * 3600)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError(
                f"'{v}' must be 1-40 lowercase letters, digits or dashes, starting with a letter "
                "(the training VM is named train-NAME-XXXXXX, at most 63 characters)"
            )
        return v

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, v: str) -> str:
        if not (v.endswith(".py") or _MODULE.fullmatch(v)):
            raise ValueError(f"'{v}' is neither a Python module (a.b.c) nor a .py script")
        too_long = len(v.encode()) > 4096 or any(len(p.encode()) > 255 for p in v.split("/"))
        if not v.isprintable() or too_long:
            raise ValueError(
                "a script path has no control characters, at most 255 bytes per part and "
                "4096 in all"
            )
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not _ENV.fullmatch(key):
                raise ValueError(f"'{key}' is not an environment variable name")
            if looks_like_credential(key) and v[key]:
                raise ValueError(
                    f"'{key}' looks like a credential, and env values are kept in clear: store "
                    f"it as a secret (`mlplane secrets set NAME`) and name it in [secrets] "
                    f'({key} = "NAME")'
                )
        return v

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, v: dict[str, str]) -> dict[str, str]:
        for key, ref in v.items():
            if not _ENV.fullmatch(key):
                raise ValueError(f"'{key}' is not an environment variable name")
            parse_ref(ref)
        return v

    @model_validator(mode="after")
    def _apart(self) -> TrainingSpec:
        both = sorted(set(self.env) & set(self.secrets))
        if both:
            raise ValueError(f"{', '.join(both)} set in both env and secrets: keep one")
        return self

    def argv(self, python: str, output_dir: str, base_dir: str) -> list[str]:
        """The job's command line."""
        import os

        if self.entrypoint.endswith(".py"):
            script = os.path.join(base_dir, self.entrypoint)
            head = [python, script]
        else:
            head = [python, "-m", self.entrypoint]
        return head + [a.replace("{output_dir}", output_dir) for a in self.args]
