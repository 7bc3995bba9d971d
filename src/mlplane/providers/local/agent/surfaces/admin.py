"""The emulator's own host, under /_mlplane/ (no Google API has these):

GET /_mlplane/healthz       liveness: {"status", "pid", "startedAt"} (no token)
GET /_mlplane/openapi.json  the Endpoints configs merged, as the load balancer serves it
GET /_mlplane/processes     the processes the agent runs (instances, replicas, builds):
                            pid, port, metadata port, status, health, identity; and the
                            [kind, name] of every resource it holds (what `mlplane status`
                            compares with the team state to show what is missing). Any valid
                            token may read it: it is this machine's process table, which
                            its OS user can read with `ps` anyway, and resource names (no
                            resource's content is in it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from mlplane.apis.errors import unauthenticated

from ..auth import Gate, Unauthenticated
from ..gateway import error_response
from ..http_server import Request, Response


class AdminApi:
    def __init__(
        self,
        gate: Gate,
        started_at: float,
        openapi: Callable[[], dict[str, Any]],
        processes: Callable[[], list[dict[str, Any]]],
        api_port: Callable[[], int],
        resources: Callable[[], list[list[str]]] = list,
    ) -> None:
        self.gate = gate
        self.started_at = started_at
        self.openapi_doc = openapi
        self.process_views = processes
        self.api_port = api_port
        self.resources = resources

    def plain(self) -> dict[tuple[str, str], Any]:
        return {
            ("GET", "/_mlplane/healthz"): self.healthz,
            ("GET", "/_mlplane/openapi.json"): self.openapi,
            # what the load balancers route `GET /openapi.json` to (lb_config.OPENAPI_PATH)
            ("GET", "/openapi.json"): self.openapi,
            ("GET", "/_mlplane/processes"): self.processes,
        }

    async def healthz(self, req: Request) -> Response:
        return Response.json(
            200, {"status": "ok", "pid": os.getpid(), "startedAt": self.started_at}
        )

    async def openapi(self, req: Request) -> Response:
        return Response.json(200, self.openapi_doc())

    async def processes(self, req: Request) -> Response:
        try:
            self.gate.caller(req.headers)
        except Unauthenticated as exc:
            return error_response(unauthenticated(str(exc)))
        return Response.json(
            200,
            {
                "pid": os.getpid(),
                "port": self.api_port(),
                "project": self.gate.project,
                "startedAt": self.started_at,
                "processes": self.process_views(),
                "resources": self.resources(),
            },
        )
