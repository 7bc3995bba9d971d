"""Write a project file: a commented mlplane.toml, validated before anything is written."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from pathlib import Path

from mlplane.errors import ConfigError
from mlplane.iam.catalog import load_catalog
from mlplane.iam.loading import load_shipped_model, merge_project, parse_model
from mlplane.model.project import ProjectFile

TEMPLATE = """\
# mlplane project file. Reference: docs/iam.md. Validate with `mlplane iam plan`.

[project]
id = {project_id}            # the GCP project id
region = {region}
zone = {zone}
provider = {provider}        # "local" (this machine) or "gcp"

[team]
# Users, groups or domains who get each process's user role (unless [members] says otherwise).
principals = {principals}

# Group membership, for local enforcement only (on GCP, Google resolves groups).
[team.groups]

# Per process, who gets its user role instead of [team] principals, e.g.:
# [members]
# serving = ["group:ml-serving@example.com"]

[naming]
prefix = "mlplane"           # service accounts are PREFIX-IDENTITY@PROJECT.iam.gserviceaccount.com

# Named resources that grants are scoped to ({{project}} and {{region}} are filled in).
[resources.buckets]
artifacts = "{{project}}-mlplane-artifacts"
state = "{{project}}-mlplane-state"   # the team state, with provider "gcp"

# With provider "gcp", what mlplane applied is shared by the team and its builds: one object
# in this bucket (a ref of [resources.buckets]), locked while a command applies.
[state]
bucket = "state"
prefix = "mlplane/"          # objects PREFIX + state.db and PREFIX + state.lock
lock_timeout = 0             # seconds to wait for another command's lock (0: fail, naming it)

[resources.secrets]
graph = "graph-readonly"     # the graph database's read-only credential

[resources.repositories]
images = "mlplane"

[resources.endpoints_services]
models = "models.endpoints.{{project}}.cloud.goog"

# Add an action, or replace a shipped one by id (see `mlplane iam explain ACTION`):
# [[actions]]
# id = "serving.write-logs"
# process = "serving"
# who = "service_account"
# requirement = "Write logs."
# reason = "Serving VMs send their logs to Cloud Logging."
# grants = [{{ scope = "project", permissions = ["logging.logEntries.create"] }}]
"""


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def default_member() -> str:
    import getpass

    try:
        user = getpass.getuser() or "developer"
    except (KeyError, OSError):
        user = os.environ.get("USER") or "developer"
    return f"user:{user}@localhost.localdomain"


def write_project_file(
    path: Path,
    *,
    project_id: str = "mlplane-demo",
    region: str = "us-central1",
    zone: str | None = None,
    provider: str = "local",
    members: Sequence[str] = (),
    force: bool = False,
) -> None:
    """Validate the values as the whole merged model, then write `path` atomically; on bad
    input raise ConfigError naming the argument, and write nothing."""
    if path.exists() and not force:
        raise ConfigError(str(path), "", "already exists (pass --force to overwrite)")
    text = TEMPLATE.format(
        project_id=_q(project_id),
        region=_q(region),
        zone=_q(zone or f"{region}-a"),
        provider=_q(provider),
        principals="[" + ", ".join(_q(m) for m in (members or [default_member()])) + "]",
    )
    source = "arguments (--project-id, --region, --zone, --member)"
    project = parse_model(ProjectFile, tomllib.loads(text), source)
    merge_project(path, project, load_shipped_model(), load_catalog())
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
