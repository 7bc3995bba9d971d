"""Which instance a workload's entries belong to: the metadata endpoint's answer (on GCE and
under the local agent), else an explicit name or $MLPLANE_INSTANCE_NAME with local stand-ins
for the instance id and zone."""

from __future__ import annotations

import hashlib
import os
import tomllib
import urllib.request
from pathlib import Path

from mlplane.data.logs.entry import MonitoredResource, check_instance_name
from mlplane.errors import ConfigError

_MD = "/computeMetadata/v1/"


def _metadata(path: str, timeout: float = 2.0) -> str | None:
    host = os.environ.get("GCE_METADATA_HOST")
    if not host:
        return None
    req = urllib.request.Request(f"http://{host}{_MD}{path}", headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # loopback locally
            return str(resp.read().decode().strip())
    except OSError:
        return None


def local_instance_id(project_id: str, name: str) -> str:
    """A stable 19-digit stand-in for an instance's numeric id (no metadata endpoint)."""
    digest = int(hashlib.sha256(f"{project_id}/{name}".encode()).hexdigest(), 16)
    return str(10**18 + digest % (9 * 10**18))


def project_zone(project_file: Path) -> str:
    try:
        data = tomllib.loads(project_file.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return ""
    zone = data.get("project", {}).get("zone", "")
    return zone if isinstance(zone, str) else ""


def resolve_resource(name: str | None, project_id: str, project_file: Path) -> MonitoredResource:
    md_name = _metadata("instance/name")
    if md_name and (name is None or name == md_name):
        zone = (_metadata("instance/zone") or "").rpartition("/")[2]
        instance_id = _metadata("instance/id") or local_instance_id(project_id, md_name)
        return MonitoredResource(md_name, instance_id, zone, project_id)
    name = name or os.environ.get("MLPLANE_INSTANCE_NAME")
    if not name:
        raise ConfigError(
            "resource",
            "",
            "no instance to log for: name one, or run under an instance's metadata endpoint",
        )
    check_instance_name(name)
    return MonitoredResource(
        name, local_instance_id(project_id, name), project_zone(project_file), project_id
    )
