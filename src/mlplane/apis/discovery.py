"""The shipped discovery subset: APIs, their methods (paths, parameters) and schemas.

    api = load("compute")                       # cached; compute.v1
    m = api.method("compute.urlMaps.get")
    m.url("https://compute.googleapis.com/", {"project": "p", "urlMap": "m"})
    api.route("GET", "projects/p/global/urlMaps/m")    # -> (method, {"project": "p", ...})

URLs are `root + servicePath + path`: `root` is Google's `rootUrl` (e.g.
`https://compute.googleapis.com/`) or the local agent's mount for that API.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

VERSIONS: dict[str, str] = {
    "compute": "v1",
    "servicemanagement": "v1",
    "serviceusage": "v1",
    "cloudbuild": "v1",
    "iamcredentials": "v1",
    # read by `mlplane up` on Google Cloud only (the local agent does not serve these)
    "cloudresourcemanager": "v1",
    "iam": "v1",
    "storage": "v1",
    "secretmanager": "v1",
    "artifactregistry": "v1",
    # served by the agent too (Cloud Run auxiliary services), and read by `mlplane up`
    "run": "v2",
}
# The APIs the local agent serves (`Endpoints.agent` points these, and only these, at it).
AGENT_APIS: tuple[str, ...] = (
    "compute",
    "servicemanagement",
    "serviceusage",
    "cloudbuild",
    "iamcredentials",
    "run",
)
# Versions the agent also serves, for clients that call them (gcloud's `run` commands call
# Cloud Run Admin v1, Knative's shapes): `load("run", "v1")`.
OTHER_VERSIONS: dict[str, tuple[str, ...]] = {"run": ("v1",)}
_TEMPLATE = re.compile(r"\{(\+?)([A-Za-z0-9_]+)\}")


def _compile(template: str) -> re.Pattern[str]:
    regex, last = [], 0
    for m in _TEMPLATE.finditer(template):
        regex.append(re.escape(template[last : m.start()]))
        regex.append(f"(?P<{m.group(2)}>.+?)" if m.group(1) else f"(?P<{m.group(2)}>[^/]+?)")
        last = m.end()
    regex.append(re.escape(template[last:]))
    return re.compile("".join(regex))


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # "path" or "query"
    type: str = "string"
    required: bool = False
    repeated: bool = False


@dataclass(frozen=True)
class Method:
    """One REST method of an API, as its discovery document describes it."""

    id: str  # e.g. compute.urlMaps.get
    http_method: str
    path: str  # template with {name} / {+name}, relative to root + servicePath
    flat_path: str  # the same with every segment explicit (what the server routes on)
    service_path: str
    parameters: dict[str, Parameter]
    request: str | None = None  # schema name of the body
    response: str | None = None
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The flat path names every segment; a `{+name}` path also takes names with slashes
        # (operations/build/PROJECT/ID), so it is tried second.
        patterns = [_compile(self.flat_path)]
        if "{+" in self.path:
            patterns.append(_compile(self.path))
        object.__setattr__(self, "_patterns", tuple(patterns))

    @property
    def literal_weight(self) -> int:
        """How much of the flat path is literal (more specific templates are tried first)."""
        return len(_TEMPLATE.sub("", self.flat_path))

    def match(self, relative: str, *, reserved: bool = True) -> dict[str, str] | None:
        """Path parameters when `relative` (after root + servicePath) matches the method: its
        flat path, or (with `reserved`) its `{+name}` path."""
        for pattern in self._patterns if reserved else self._patterns[:1]:
            m = pattern.fullmatch(relative)
            if m:
                return m.groupdict()
        return None

    def expand(self, params: dict[str, Any]) -> str:
        """The path with its parameters filled in (`{+name}` keeps its slashes)."""

        def fill(m: re.Match[str]) -> str:
            name = m.group(2)
            if name not in params:
                raise KeyError(f"{self.id}: missing path parameter '{name}'")
            safe = "/" if m.group(1) else ""
            return quote(str(params[name]), safe=safe + "@:")

        return _TEMPLATE.sub(fill, self.path)

    def query(self, params: dict[str, Any]) -> str:
        pairs: list[tuple[str, str]] = []
        for name, value in params.items():
            p = self.parameters.get(name)
            if p is None:
                raise KeyError(f"{self.id}: no parameter '{name}'")
            if p.location != "query" or value is None:
                continue
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                pairs.append((name, str(v).lower() if isinstance(v, bool) else str(v)))
        return urlencode(pairs)

    def url(self, root: str, params: dict[str, Any]) -> str:
        """The full URL of a call: `root + servicePath + path [? query]`."""
        query = self.query(params)
        return root + self.service_path + self.expand(params) + (f"?{query}" if query else "")


@dataclass(frozen=True)
class Api:
    name: str
    version: str
    revision: str
    root_url: str
    service_path: str
    methods: dict[str, Method]
    schemas: dict[str, dict[str, Any]]

    def method(self, method_id: str) -> Method:
        try:
            return self.methods[method_id]
        except KeyError:
            raise KeyError(f"{self.name}.{self.version} has no method {method_id}") from None

    def schema(self, name: str) -> dict[str, Any]:
        return self.schemas[name]

    @property
    def _routes(self) -> list[Method]:
        cached: list[Method] | None = self.__dict__.get("_route_cache")
        if cached is None:
            cached = sorted(self.methods.values(), key=lambda m: -m.literal_weight)
            object.__setattr__(self, "_route_cache", cached)
        return cached

    def route(self, http_method: str, relative: str) -> tuple[Method, dict[str, str]] | None:
        """The method serving `http_method relative` (relative to root + servicePath). Flat
        paths are tried first, so `v1/{+name}:run` does not take a global trigger's run."""
        for reserved in (False, True):
            for method in self._routes:
                if method.http_method == http_method:
                    params = method.match(relative, reserved=reserved)
                    if params is not None:
                        return method, params
        return None

    def allows(self, relative: str) -> list[str]:
        """HTTP methods some method accepts at this path (for 405 answers)."""
        return sorted({m.http_method for m in self._routes if m.match(relative) is not None})


def _method(mid: str, raw: dict[str, Any], service_path: str) -> Method:
    params = {
        name: Parameter(
            name,
            p.get("location", "query"),
            p.get("type", "string"),
            bool(p.get("required")),
            bool(p.get("repeated")),
        )
        for name, p in raw["parameters"].items()
    }
    return Method(
        mid,
        raw["httpMethod"],
        raw["path"],
        raw["flatPath"],
        service_path,
        params,
        raw.get("request"),
        raw.get("response"),
    )


@cache
def load(name: str, version: str | None = None) -> Api:
    """The shipped subset of API `name` (compute, servicemanagement, ...), at the version
    mlplane calls unless `version` names another shipped one."""
    version = version or VERSIONS.get(name)
    if version is None or (
        version != VERSIONS.get(name) and version not in OTHER_VERSIONS.get(name, ())
    ):
        raise KeyError(f"no shipped discovery document for API '{name}' {version or ''}".strip())
    import gzip
    from importlib import resources

    blob = resources.files("mlplane.apis.documents").joinpath(f"{name}.{version}.json.gz")
    doc = json.loads(gzip.decompress(blob.read_bytes()))
    service_path = doc["servicePath"]
    methods = {mid: _method(mid, raw, service_path) for mid, raw in doc["methods"].items()}
    return Api(
        doc["name"],
        doc["version"],
        doc["revision"],
        doc["rootUrl"],
        service_path,
        methods,
        doc["schemas"],
    )


def method(method_id: str) -> Method:
    """A method by id, e.g. `compute.urlMaps.get` (its API is the id's first part)."""
    return load(method_id.split(".", 1)[0]).method(method_id)
