"""Load the shipped operational model and a project file, merge them, and validate the result.

Every error is a ConfigError naming the file and the field path (`actions[3].grants[0]...`);
nothing is written by loading.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mlplane.errors import ConfigError
from mlplane.iam.catalog import Catalog, load_catalog
from mlplane.iam.validation import validate_model
from mlplane.model.operational import OperationalModel
from mlplane.model.project import ProjectFile

SHIPPED = "operational_model.toml (shipped with mlplane)"
_M = TypeVar("_M", bound=BaseModel)


_INSTANCE_OF = re.compile(r" or instance of \w+")
_PLAIN_KEY = re.compile(r"[^\s\"'\[\].\\]+")


def format_loc(loc: Sequence[int | str]) -> str:
    """`actions[3].grants[0]`; a key that is empty or has spaces, dots, quotes or brackets is
    quoted (`team.groups[""]`), so the path always names the field."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(str(part)) or not str(part).isprintable():
            out += f"[{json.dumps(str(part))[:80]}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_model(cls: type[_M], data: Any, source: str) -> _M:
    """Validate `data` as `cls`; the first error becomes a ConfigError with its field path."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not part of the schema; check its spelling)"
        msg = _INSTANCE_OF.sub("", msg)  # "... or instance of GcloudPolicy": our class names
        more = f" (and {len(exc.errors()) - 1} more errors)" if len(exc.errors()) > 1 else ""
        raise ConfigError(source, format_loc(err["loc"]), msg + more) from None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "", "no such file (create one with `mlplane init`)") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from None
    try:
        return tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"not valid TOML: {exc}") from None
    except ValueError:  # tomllib converting an integer of more than 4300 digits
        raise ConfigError(str(path), "", "not valid TOML: a number is too long") from None
    except RecursionError:
        raise ConfigError(
            str(path), "", "not valid TOML: arrays or tables nested too deeply"
        ) from None


@cache
def load_shipped_model() -> OperationalModel:
    """The operational model mlplane ships (parsed once per process: it is frozen)."""
    text = resources.files("mlplane.model").joinpath("operational_model.toml").read_text()
    return parse_model(OperationalModel, tomllib.loads(text), SHIPPED)


@dataclass(frozen=True)
class LoadedProject:
    """A project file, the model merged from the shipped one and its additions, and origins."""

    path: Path
    project: ProjectFile
    model: OperationalModel
    origins: dict[str, tuple[str, str]]  # "actions:ID" -> (file, "actions[i]")


def _merge(
    shipped: Iterable[Any], added: Sequence[Any], key: str, kind: str, source: str
) -> tuple[list[Any], dict[str, tuple[str, str]]]:
    merged: dict[str, Any] = {}
    origins: dict[str, tuple[str, str]] = {}
    for i, item in enumerate(shipped):
        merged[getattr(item, key)] = item
        origins[f"{kind}:{getattr(item, key)}"] = (SHIPPED, f"{kind}[{i}]")
    seen: set[str] = set()
    for i, item in enumerate(added):
        k = getattr(item, key)
        if k in seen:
            raise ConfigError(source, f"{kind}[{i}].{key}", f"'{k}' is defined twice")
        seen.add(k)
        merged[k] = item
        origins[f"{kind}:{k}"] = (source, f"{kind}[{i}]")
    return list(merged.values()), origins


def load_project(path: Path | str, catalog: Catalog | None = None) -> LoadedProject:
    path = Path(path)
    project = parse_model(ProjectFile, read_toml(path), str(path))
    return merge_project(path, project, load_shipped_model(), catalog or load_catalog())


def merge_project(
    path: Path, project: ProjectFile, shipped: OperationalModel, catalog: Catalog
) -> LoadedProject:
    src = str(path)
    origins: dict[str, tuple[str, str]] = {}
    lists: dict[str, list[Any]] = {}
    for kind, key in (
        ("processes", "id"),
        ("identities", "id"),
        ("actions", "id"),
        ("triggers", "name"),
    ):
        lists[kind], o = _merge(getattr(shipped, kind), getattr(project, kind), key, kind, src)
        origins.update(o)
    known = {a.id for a in lists["actions"]}
    for i, action_id in enumerate(project.disabled_actions):
        if action_id not in known:
            raise ConfigError(src, f"disabled_actions[{i}]", f"no action '{action_id}'")
    disabled = set(project.disabled_actions)
    lists["actions"] = [a for a in lists["actions"] if a.id not in disabled]
    model = OperationalModel(
        version=shipped.version,
        processes=tuple(lists["processes"]),
        identities=tuple(lists["identities"]),
        actions=tuple(lists["actions"]),
        triggers=tuple(lists["triggers"]),
        resource_kinds=shipped.resource_kinds,
        builds=shipped.builds,
        state=(
            shipped.state.model_copy(update={"bucket": project.state.bucket})
            if shipped.state is not None
            else None
        ),
    )
    validate_model(model, project, origins, catalog, disabled, src)
    return LoadedProject(path, project, model, origins)
