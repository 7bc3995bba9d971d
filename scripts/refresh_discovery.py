"""Refresh mlplane's shipped subset of Google's API discovery documents.

Usage: python scripts/refresh_discovery.py [DOCUMENTS_DIR]

DOCUMENTS_DIR defaults to the discovery cache of the installed google-api-python-client
(`googleapiclient/discovery_cache/documents`). For each API in `SUBSET`, the script keeps the
listed methods (id, HTTP method, path, flatPath, parameters, request/response schema) and every
schema they reach, with descriptions reduced to one flag: `outputOnly` where Google's text says
"[Output Only]" / "Output only." (or the schema says `readOnly`). The result is written as
gzipped JSON into `src/mlplane/apis/documents/`, with the source revision and sha256, so both the
agent (serving these APIs) and the client (calling them) read the same paths and schemas.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

TARGET = Path(__file__).resolve().parent.parent / "src" / "mlplane" / "apis" / "documents"

# api.version -> method ids kept (the ones mlplane calls or the agent serves, incl. what gcloud
# calls for the commands the conformance suite runs).
_COMPUTE_KINDS = {
    "instances": ("insert", "get", "list", "delete", "aggregatedList", "reset", "start", "stop",
                  "getGuestAttributes", "setMetadata", "setLabels"),
    "instanceTemplates": ("insert", "get", "list", "delete", "aggregatedList"),
    "instanceGroupManagers": ("insert", "get", "list", "delete", "patch", "resize",
                              "setInstanceTemplate", "listManagedInstances", "aggregatedList",
                              "recreateInstances"),
    "instanceGroups": ("get", "list", "setNamedPorts", "listInstances", "aggregatedList"),
    "autoscalers": ("insert", "get", "list", "delete", "patch", "update", "aggregatedList"),
    "healthChecks": ("insert", "get", "list", "delete", "patch", "update", "aggregatedList"),
    "backendServices": ("insert", "get", "list", "delete", "patch", "update", "getHealth",
                        "aggregatedList"),
    "urlMaps": ("insert", "get", "list", "delete", "patch", "update", "validate",
                "aggregatedList"),
    "targetHttpProxies": ("insert", "get", "list", "delete", "setUrlMap", "aggregatedList"),
    "globalForwardingRules": ("insert", "get", "list", "delete", "setTarget"),
    "forwardingRules": ("aggregatedList",),
    "firewalls": ("insert", "get", "list", "delete", "patch"),
    "globalAddresses": ("insert", "get", "list", "delete"),
    "globalOperations": ("get", "wait", "list", "aggregatedList"),
    "zoneOperations": ("get", "wait", "list"),
    "zones": ("get", "list"),
    "regions": ("get", "list"),
    "projects": ("get",),
}  # fmt: skip
SUBSET: dict[str, tuple[str, ...]] = {
    "compute.v1": tuple(
        f"compute.{kind}.{method}" for kind, methods in _COMPUTE_KINDS.items() for method in methods
    ),
    "servicemanagement.v1": tuple(
        "servicemanagement." + m
        for m in (
            "operations.get",
            "operations.list",
            "services.create",
            "services.delete",
            "services.get",
            "services.list",
            "services.getConfig",
            "services.testIamPermissions",
            "services.configs.create",
            "services.configs.get",
            "services.configs.list",
            "services.configs.submit",
            "services.rollouts.create",
            "services.rollouts.get",
            "services.rollouts.list",
        )
    ),
    "serviceusage.v1": tuple(
        "serviceusage." + m
        for m in (
            "operations.get",
            "services.enable",
            "services.disable",
            "services.get",
            "services.list",
        )
    ),
    "cloudbuild.v1": tuple(
        "cloudbuild." + m
        for m in (
            "operations.get",
            "projects.builds.get",
            "projects.builds.list",
            "projects.builds.cancel",
            "projects.triggers.create",
            "projects.triggers.get",
            "projects.triggers.list",
            "projects.triggers.run",
            "projects.triggers.delete",
            "projects.locations.builds.get",
            "projects.locations.builds.list",
            "projects.locations.builds.cancel",
            "projects.locations.operations.get",
            "projects.locations.triggers.get",
            "projects.locations.triggers.list",
            "projects.locations.triggers.run",
            "projects.locations.triggers.create",
            "projects.locations.triggers.delete",
        )
    ),
    "iamcredentials.v1": ("iamcredentials.projects.serviceAccounts.generateAccessToken",),
    # Read only, by `mlplane up` on provider "gcp" (workflows/preflight*.py): is the foundation
    # `mlplane export` creates there, and may the caller do what the model lets them?
    "cloudresourcemanager.v1": ("cloudresourcemanager.projects.testIamPermissions",),
    "iam.v1": (
        "iam.projects.roles.list",
        "iam.projects.serviceAccounts.list",
        "iam.projects.serviceAccounts.testIamPermissions",
    ),
    "storage.v1": ("storage.buckets.get", "storage.buckets.testIamPermissions"),
    "secretmanager.v1": (
        "secretmanager.projects.secrets.get",
        "secretmanager.projects.secrets.testIamPermissions",
    ),
    "artifactregistry.v1": (
        "artifactregistry.projects.locations.repositories.get",
        "artifactregistry.projects.locations.repositories.testIamPermissions",
    ),
    # Cloud Run Admin v2: what mlplane calls and the agent serves.
    "run.v2": tuple(
        "run.projects.locations." + m
        for m in (
            "services.create",
            "services.get",
            "services.list",
            "services.patch",
            "services.delete",
            "services.revisions.get",
            "services.revisions.list",
            "services.revisions.delete",
            "operations.get",
            "operations.list",
            "operations.wait",
            "operations.delete",
        )
    ),
    # Cloud Run Admin v1 (Knative's shapes): what gcloud's `run services describe|list` and
    # `run revisions list` call; the agent serves them as a view of the same services.
    "run.v1": tuple(
        "run." + m
        for m in (
            "namespaces.services.get",
            "namespaces.services.list",
            "namespaces.revisions.get",
            "namespaces.revisions.list",
            "projects.locations.services.list",
            "projects.locations.services.get",
            "projects.locations.revisions.list",
        )
    ),
}

_KEEP_SCHEMA = ("type", "format", "enum", "$ref", "items", "properties", "additionalProperties")
_KEEP_PARAM = ("type", "format", "location", "required", "repeated", "pattern", "enum")


def _output_only(node: dict[str, Any]) -> bool:
    text = node.get("description", "").lstrip()
    return bool(node.get("readOnly")) or text.startswith(("[Output Only]", "Output only."))


def _trim(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: node[k] for k in _KEEP_SCHEMA if k in node}
    if "items" in out:
        out["items"] = _trim(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _trim(out["additionalProperties"])
    if "properties" in out:
        out["properties"] = {k: _trim(v) for k, v in sorted(out["properties"].items())}
    if _output_only(node):
        out["outputOnly"] = True
    required = node.get("annotations", {}).get("required")
    if required:
        out["requiredFor"] = sorted(required)
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _methods(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for res in resources.values():
        for method in res.get("methods", {}).values():
            out[method["id"]] = method
        out.update(_methods(res.get("resources", {})))
    return out


def subset(doc: dict[str, Any], wanted: tuple[str, ...]) -> dict[str, Any]:
    every = _methods(doc.get("resources", {}))
    missing = [m for m in wanted if m not in every]
    if missing:
        raise SystemExit(f"{doc['name']}.{doc['version']}: no method {', '.join(missing)}")
    methods: dict[str, Any] = {}
    roots: set[str] = set()
    for mid in wanted:
        m = every[mid]
        entry: dict[str, Any] = {
            "httpMethod": m["httpMethod"],
            "path": m["path"],
            "flatPath": m.get("flatPath", m["path"]),
            "parameters": {
                name: {k: p[k] for k in _KEEP_PARAM if k in p}
                for name, p in sorted(m.get("parameters", {}).items())
            },
            "parameterOrder": m.get("parameterOrder", []),
        }
        for part in ("request", "response"):
            if part in m:
                entry[part] = m[part]["$ref"]
                roots.add(m[part]["$ref"])
        methods[mid] = entry
    schemas = doc["schemas"]
    keep: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        found: set[str] = set()
        _refs(schemas[name], found)
        todo.extend(found - keep)
    return {
        "name": doc["name"],
        "version": doc["version"],
        "revision": doc["revision"],
        "rootUrl": doc["rootUrl"],
        "servicePath": doc["servicePath"],
        "methods": methods,
        "schemas": {name: _trim(schemas[name]) for name in sorted(keep)},
    }


def default_dir() -> Path:
    import googleapiclient  # type: ignore[import-untyped]

    return Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv else default_dir()
    TARGET.mkdir(parents=True, exist_ok=True)
    for api, wanted in SUBSET.items():
        raw = (src / f"{api}.json").read_bytes()
        data = subset(json.loads(raw), wanted)
        text = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        (TARGET / f"{api}.json.gz").write_bytes(gzip.compress(text, 9, mtime=0))
        print(
            f"{api}: revision {data['revision']}, {len(data['methods'])} methods, "
            f"{len(data['schemas'])} schemas, source sha256 {hashlib.sha256(raw).hexdigest()}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
