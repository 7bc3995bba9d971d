"""The `local` platform: the project's agent serves Google's APIs on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import TYPE_CHECKING

from mlplane.apis.endpoints import Endpoints
from mlplane.providers.errors import ProviderUnavailable
from mlplane.providers.replica_view import AgentView, ReplicaView

from .admin_client import frontend_base
from .control import AgentHandle, require_agent

if TYPE_CHECKING:
    from mlplane.model.compute import ForwardingRule


class LocalPlatform:
    name = "local"
    max_poll_interval = 0.02

    def __init__(self, project_file: Path, agent: AgentHandle | None = None) -> None:
        self.project_file = project_file
        self._agent = agent

    def agent(self) -> AgentHandle:
        if self._agent is None:
            self._agent = require_agent(self.project_file)
        return self._agent

    def endpoints(self) -> Endpoints:
        return self.agent().endpoints

    def frontend_base(self, rule: ForwardingRule | None) -> str:
        if rule is None:
            raise ProviderUnavailable(
                "no forwarding rule is recorded: bootstrap the front end first "
                "(the first `mlplane serve deploy` does)"
            )
        return frontend_base(rule.port_range.partition("-")[0])

    def processes(self, token: str) -> list[ReplicaView]:
        return list(self.agent_view(token).processes)

    def agent_view(self, token: str) -> AgentView:
        handle = self.agent()
        conn = http.client.HTTPConnection("127.0.0.1", handle.info.port, timeout=10)
        try:
            conn.request("GET", "/_mlplane/processes", headers={"Authorization": f"Bearer {token}"})
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise ProviderUnavailable(f"local agent at {handle.base_url}: {exc}") from None
        finally:
            conn.close()
        if resp.status != 200:
            raise ProviderUnavailable(f"local agent: processes: HTTP {resp.status}: {data}")
        return AgentView.from_json(data)
