"""Shared vocabulary of the Compute Engine specs: keys, links, names, lifecycle, permissions.

Field names mirror the Compute Engine v1 API (snake_case here, camelCase on the wire through
aliases); `to_api(project)` renders the request body, qualifying resource links when a project is
given. Specs are frozen pydantic models that refuse unknown fields.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PlainSerializer,
    SerializationInfo,
    ValidationInfo,
)
from pydantic.alias_generators import to_camel

from mlplane.model.api_io import is_subset, last_segment, modeled
from mlplane.model.kinds import Lifecycle as Lifecycle
from mlplane.model.kinds import Mutability as Mutability
from mlplane.model.kinds import ResourceKey as ResourceKey
from mlplane.model.kinds import Verb as Verb
from mlplane.model.refs import ResourceRef

NAME_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
NAME_MAX = 63
BASE_INSTANCE_NAME_MAX = 58
COMPUTE_URL = "https://www.googleapis.com/compute/v1/"


@dataclass(frozen=True)
class PermissionCheck:
    """Permissions the acting principal needs on one resource."""

    permissions: tuple[str, ...]
    resource: ResourceRef


def check_name(name: str, *, max_len: int = NAME_MAX, what: str = "name") -> str:
    """Validate a GCP resource name (RFC 1035 label); returns it or raises ValueError."""
    if not 1 <= len(name) <= max_len:
        raise ValueError(f"{what} '{name}' must be 1-{max_len} characters (has {len(name)})")
    if not NAME_RE.fullmatch(name):
        raise ValueError(
            f"{what} '{name}' must match [a-z]([-a-z0-9]*[a-z0-9])?: lowercase letter first, "
            "then lowercase letters, digits or dashes, no trailing dash"
        )
    return name


def _check_name(name: str) -> str:
    return check_name(name)


Name = Annotated[str, AfterValidator(_check_name)]

# Collections of links that point at resources mlplane manages, and the kind each designates.
# `instanceGroups/X` is the group that the MIG named X manages, so it is a reference to that MIG.
COLLECTION_KINDS: Mapping[str, str] = {
    "instanceTemplates": "instanceTemplate",
    "instanceGroupManagers": "instanceGroupManager",
    "instanceGroups": "instanceGroupManager",
    "autoscalers": "autoscaler",
    "healthChecks": "healthCheck",
    "backendServices": "backendService",
    "urlMaps": "urlMap",
    "targetHttpProxies": "targetHttpProxy",
    "forwardingRules": "forwardingRule",
    "instances": "instance",
}

# A full link may come from Google (https://www.googleapis.com/compute/v1/...) or from the local
# agent, whose self links carry its own base URL (http://127.0.0.1:PORT/compute/v1/...).
_LINK_RE = re.compile(
    r"(?:(?:https?://[^/]+/compute/v1/)?projects/(?P<project>[^/]+)/)?"
    r"(?P<scope>global|zones/[a-z0-9-]+|regions/[a-z0-9-]+)/(?P<collection>[A-Za-z]+)/"
    r"(?P<name>[a-z]([-a-z0-9]*[a-z0-9])?)"
)


@dataclass(frozen=True)
class LinkParts:
    project: str | None
    scope: str
    collection: str
    name: str

    @property
    def key(self) -> ResourceKey | None:
        kind = COLLECTION_KINDS.get(self.collection)
        return ResourceKey(kind, self.name) if kind else None


def parse_link(link: str) -> LinkParts:
    """Parse a full or partial Compute Engine resource URL; raises ValueError."""
    m = _LINK_RE.fullmatch(link)
    if not m:
        raise ValueError(
            f"'{link}' is not a Compute Engine resource link: write e.g. "
            "'global/healthChecks/NAME', 'zones/ZONE/instanceGroups/NAME' or a full URL"
        )
    return LinkParts(m["project"], m["scope"], m["collection"], m["name"])


def qualify_link(link: str, project: str, base: str = COMPUTE_URL) -> str:
    """The fully-qualified URL of a link (backend groups must be fully qualified); `base` is
    Google's (the default) or the local agent's `.../compute/v1/`."""
    parts = parse_link(link)
    return (
        f"{base}projects/{parts.project or project}/{parts.scope}/{parts.collection}/{parts.name}"
    )


def link_key(link: str | None) -> ResourceKey | None:
    return parse_link(link).key if link else None


def short_link(link: str, project: str | None = None) -> str:
    """`global/healthChecks/x` for any form of a link to a resource of `project` (a link to
    another project stays `projects/P/...`)."""
    parts = parse_link(link)
    where = f"{parts.scope}/{parts.collection}/{parts.name}"
    if parts.project is None or parts.project == project:
        return where
    return f"projects/{parts.project}/{where}"


def _check_link(link: str, info: ValidationInfo) -> str:
    """Validate a link; when read back from an API (context `{"read": PROJECT}`), shorten it so
    that a spec read from a response equals the spec that was sent."""
    parse_link(link)
    ctx = info.context
    project = ctx.get("read") if isinstance(ctx, dict) else None
    return short_link(link, project) if isinstance(project, str) else link


def _serialize_link(link: str, info: SerializationInfo) -> str:
    ctx = info.context
    project = ctx.get("project") if isinstance(ctx, dict) else None
    if not isinstance(project, str) or not project:
        return link
    base = ctx.get("base") if isinstance(ctx, dict) else None
    return qualify_link(link, project, base if isinstance(base, str) else COMPUTE_URL)


ResourceLink = Annotated[
    str, AfterValidator(_check_link), PlainSerializer(_serialize_link, return_type=str)
]


def global_link(collection: str, name: str) -> str:
    return f"global/{collection}/{name}"


def zonal_link(zone: str, collection: str, name: str) -> str:
    return f"zones/{zone}/{collection}/{name}"


class ApiModel(BaseModel):
    """Base of every user-facing spec: frozen, unknown fields refused, camelCase on the wire."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    def to_api(self, project: str | None = None, *, base: str | None = None) -> dict[str, Any]:
        """The Compute Engine JSON for this object; links fully qualified if `project` is given
        (under `base`: Google's compute URL by default, or the local agent's)."""
        out: dict[str, Any] = self.model_dump(
            mode="json", exclude_none=True, context={"project": project, "base": base}
        )
        return out


class ResourceSpec(ApiModel):
    """A managed resource kind. Subclasses declare the class variables below."""

    KIND: ClassVar[str]
    COLLECTION: ClassVar[str]
    LIFECYCLE: ClassVar[Lifecycle]
    MUTABILITY: ClassVar[Mutability]
    # Whether update/patch must carry the fingerprint read by `get` (412 when stale).
    FINGERPRINTED: ClassVar[bool] = False
    # For dynamic kinds: fields whose change cannot be applied in place (forces a replace).
    REPLACE_FIELDS: ClassVar[frozenset[str]] = frozenset()
    # Fields that locate the resource (path parameters), never sent in the request body.
    PATH_FIELDS: ClassVar[frozenset[str]] = frozenset()
    # Fields set by a call of their own after insert (e.g. a MIG's named ports), not in its body.
    BODY_EXCLUDE: ClassVar[frozenset[str]] = frozenset()
    PERMISSIONS: ClassVar[Mapping[Verb, tuple[str, ...]]]
    # The Google API and discovery schema of the resource (what request bodies are checked
    # against and responses read back with).
    API: ClassVar[str] = "compute"
    API_SCHEMA: ClassVar[str]
    # Output-only fields of the API that the spec still reads back (as `zone`, from its URL).
    READ_BACK: ClassVar[frozenset[str]] = frozenset()

    name: Name
    description: str | None = None

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(self.KIND, self.name)

    @property
    def link(self) -> str:
        """Partial URL of this resource, e.g. `global/healthChecks/NAME`."""
        return global_link(self.COLLECTION, self.name)

    def references(self) -> tuple[ResourceKey, ...]:
        """Managed resources this one refers to (must exist before it, outlive it)."""
        return ()

    def to_api(
        self,
        project: str | None = None,
        *,
        fingerprint: str | None = None,
        base: str | None = None,
    ) -> dict[str, Any]:
        out = super().to_api(project, base=base)
        for field in self.PATH_FIELDS | self.BODY_EXCLUDE:
            out.pop(to_camel(field), None)
        if fingerprint is not None and self.FINGERPRINTED:
            out["fingerprint"] = fingerprint
        return out

    @classmethod
    def from_api(cls, body: Mapping[str, Any], project: str) -> Self:
        """The spec a Google response (or request body) describes: output-only fields and fields
        mlplane does not model dropped, links shortened. Raises pydantic's ValidationError."""
        return cls.model_validate(cls.api_fields(body), context={"read": project})

    @classmethod
    def api_fields(cls, body: Mapping[str, Any]) -> dict[str, Any]:
        """The wire fields of `body` this kind models (kinds adjust read-back values here)."""
        from mlplane.apis.discovery import load
        from mlplane.apis.schema import strip_output_only

        data = strip_output_only(load(cls.API), cls.API_SCHEMA, dict(body))
        for field in cls.READ_BACK:
            wire = to_camel(field)
            if wire in body:
                data[wire] = last_segment(body[wire]) if field == "zone" else body[wire]
        out: dict[str, Any] = modeled(cls, data)
        return out

    def matches(self, live: ResourceSpec) -> bool:
        """Whether `live` (read back from the provider) holds everything this spec sends: fields
        the server filled in that this spec leaves unset are not a difference."""
        return type(live) is type(self) and is_subset(self.to_api(), live.to_api())

    def permission_checks(self, verb: Verb, project: str) -> tuple[PermissionCheck, ...]:
        """What the acting principal needs to perform `verb` on this resource."""
        perms = self.PERMISSIONS.get(verb, ())
        own = (PermissionCheck(perms, ResourceRef(self.KIND, self.name, project)),)
        return own + self.extra_permission_checks(verb, project) if perms else ()

    def extra_permission_checks(self, verb: Verb, project: str) -> tuple[PermissionCheck, ...]:
        """Checks on other resources (e.g. actAs on an attached service account)."""
        return ()

    def merge_live(self, live: Self) -> Self:
        """The body to send when updating `live` to this spec (default: this spec as is).

        Kinds that are also changed incrementally by lifecycle operations (the URL map) keep the
        parts of `live` this spec does not declare, so a re-run bootstrap does not undo them.
        """
        return self

    def with_changes(self, changes: Sequence[Change]) -> Self:
        """This spec with `changes` applied in order (kinds may batch them, see UrlMap)."""
        spec: ResourceSpec = self
        for change in changes:
            spec = change.apply(spec)
        if not isinstance(spec, type(self)):
            raise TypeError(f"a change turned {self.KIND} into {type(spec).__name__}")
        return spec

    def changed_fields(self, other: ResourceSpec) -> tuple[str, ...]:
        """Top-level fields whose values differ between two specs of the same kind."""
        mine, theirs = self.__dict__, other.__dict__
        return tuple(f for f in type(self).model_fields if mine.get(f) != theirs.get(f))


class Change(ApiModel, ABC):
    """An incremental intent on a dynamic passive resource (e.g. add a route to the URL map).

    A change is re-applied to the freshly read live object after a fingerprint conflict, so it
    must be idempotent and must not capture the object it was planned against.
    """

    @property
    @abstractmethod
    def target(self) -> ResourceKey:
        """The resource this change edits."""

    @abstractmethod
    def apply(self, spec: ResourceSpec) -> ResourceSpec:
        """The edited copy of `spec` (raises ValueError when the change cannot apply)."""


def permissions_of(spec_types: Sequence[type[ResourceSpec]]) -> frozenset[str]:
    """Every permission name the given kinds declare (for catalog checks)."""
    return frozenset(p for t in spec_types for perms in t.PERMISSIONS.values() for p in perms)
