"""What Service Management and Service Usage hold beyond the resource records: each managed
service's submitted configs and its rollouts, and which services are enabled. Kept in memory
and written through to owner-only files, as the resources are (docs/decisions/1600), so that
a restarted agent still answers `services.getConfig` with the active config:

    servicemanagement/enabled.json                 the enabled services
    servicemanagement/SERVICE/configs/ID.json      a submitted config (written once)
    servicemanagement/SERVICE/rollouts.json        the service's rollouts, oldest first
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from mlplane.model.compute import EndpointsConfig
from mlplane.providers.local.paths import write_atomic

from ..records import damaged


@dataclass
class ServiceConfig:
    id: str
    spec: EndpointsConfig
    files: list[dict[str, Any]]
    created_at: float = field(default_factory=time.time)


@dataclass
class RolloutRecord:
    id: str
    config_id: str
    created_by: str
    status: str = "IN_PROGRESS"
    created_at: float = field(default_factory=time.time)


# Reads a config's submitted files back into its spec (ValueError when they do not hold one).
ConfigReader = Callable[[str, list[dict[str, Any]]], EndpointsConfig]


class EndpointsState:
    def __init__(self, root: Path | None, platform: Iterable[str] = ()) -> None:
        self.root = root
        self.configs: dict[str, list[ServiceConfig]] = {}
        self.rollouts: dict[str, list[RolloutRecord]] = {}
        self.enabled: set[str] = set(platform)
        self._platform = frozenset(platform)

    # -- changes -------------------------------------------------------------------------------

    def add_config(self, name: str, cfg: ServiceConfig) -> None:
        self.configs.setdefault(name, []).append(cfg)
        data = {"id": cfg.id, "createdAt": cfg.created_at, "files": cfg.files}
        self._write(self._service(name) / "configs" / f"{quote(cfg.id, safe='')}.json", data)

    def add_rollout(self, name: str, rollout: RolloutRecord) -> None:
        self.rollouts.setdefault(name, []).append(rollout)
        self.rollouts_changed(name)

    def rollouts_changed(self, name: str) -> None:
        data = [asdict(r) for r in self.rollouts.get(name, ())]
        self._write(self._service(name) / "rollouts.json", data)

    def enable(self, service: str) -> None:
        self.enabled.add(service)
        self._write_enabled()

    def disable(self, service: str) -> None:
        self.enabled.discard(service)
        self._write_enabled()

    def _write_enabled(self) -> None:
        self._write(self._dir() / "enabled.json", sorted(self.enabled - self._platform))

    # -- files ---------------------------------------------------------------------------------

    def _dir(self) -> Path:
        assert self.root is not None
        return self.root

    def _service(self, name: str) -> Path:
        return self._dir() / quote(name, safe="")

    def _write(self, path: Path, data: object) -> None:
        if self.root is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, json.dumps(data, separators=(",", ":")), mode=0o600)

    def load(self, read_config: ConfigReader) -> None:
        """Read back what a previous agent wrote; ConfigError naming a file it cannot read."""
        if self.root is None or not self.root.is_dir():
            return
        enabled = self.root / "enabled.json"
        if enabled.exists():
            self.enabled |= {str(s) for s in _read(enabled, list)}
        for service in sorted(p for p in self.root.iterdir() if p.is_dir()):
            name = unquote(service.name)
            configs = []
            for path in sorted((service / "configs").glob("*.json")):
                d = _read(path, dict)
                try:
                    files = list(d["files"])
                    spec = read_config(name, files)
                    configs.append(ServiceConfig(str(d["id"]), spec, files, float(d["createdAt"])))
                except (KeyError, TypeError, ValueError) as exc:
                    raise damaged(path, f"not a service config: {exc}") from None
            self.configs[name] = sorted(configs, key=lambda c: c.created_at)
            path = service / "rollouts.json"
            if path.exists():
                try:
                    rollouts = [RolloutRecord(**r) for r in _read(path, list)]
                except TypeError as exc:
                    raise damaged(path, f"not a list of rollouts: {exc}") from None
                self.rollouts[name] = rollouts


def _read(path: Path, kind: type) -> Any:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise damaged(path, f"not JSON: {exc}") from None
    if not isinstance(data, kind):
        raise damaged(path, f"not a JSON {'object' if kind is dict else 'array'}")
    return data
