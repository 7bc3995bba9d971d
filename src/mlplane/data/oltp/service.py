"""`Oltp`: the data SDK's OLTP API (Spanner on GCP, SQLite locally). Every read is authorized
for the acting principal with the permissions a Spanner read-only query takes
(`serving.read-spanner`), before a backend is touched."""

from __future__ import annotations

from pathlib import Path

from mlplane.data.identity import Caller
from mlplane.data.oltp.backend import OltpBackend
from mlplane.data.warehouse.params import Params
from mlplane.data.warehouse.rows import Rows
from mlplane.data.warehouse.service import load_backend
from mlplane.data.warehouse.settings import load_settings
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

READ = (
    "spanner.databases.select",
    "spanner.databases.beginReadOnlyTransaction",
    "spanner.sessions.create",
)

BACKENDS: dict[str, str] = {
    "sqlite": "mlplane.data.oltp.sqlite:LocalOltp",
    "spanner": "mlplane.data.oltp.spanner:SpannerOltp",
}


class Oltp:
    """The project's OLTP database as the acting principal may read it. SQL names parameters
    `@name`, as Spanner does, on every backend."""

    def __init__(self, caller: Caller, backend: OltpBackend) -> None:
        self.caller = caller
        self.backend = backend

    @classmethod
    def open(
        cls,
        project_file: Path | str | None = None,
        principal: Principal | str | None = None,
        backend: str | OltpBackend | None = None,
    ) -> Oltp:
        """For the acting principal (see `Caller.resolve`), on `backend` ('sqlite',
        'spanner', an instance, or by default the project's `[data] oltp`)."""
        caller = Caller.resolve(project_file, principal)
        if backend is None or isinstance(backend, str):
            settings = load_settings(caller.project_file)
            chosen: OltpBackend = load_backend(  # type: ignore[assignment]
                BACKENDS, backend or settings.data.oltp, settings
            )
            backend = chosen
        return cls(caller, backend)

    @property
    def principal(self) -> Principal:
        return self.caller.principal

    def read(self, sql: str, params: Params | None = None) -> Rows:
        self.caller.require(READ, ResourceRef.project_root(self.caller.project))
        return self.backend.read(sql, params)
