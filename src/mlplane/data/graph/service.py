"""`Graph`: the data SDK's graph API (Neo4j on GCP, an embedded Cypher store locally).

Reading the graph is reading its credential: every query is authorized for the acting principal
with `secretmanager.versions.access` on the graph secret (`[resources.secrets] graph`, the
`*.read-graph` actions), before a backend is touched, for every backend alike. The Neo4j backend
then reads that credential through the secrets store as the same principal.
"""

from __future__ import annotations

from pathlib import Path

from mlplane.data.graph.backend import GraphBackend
from mlplane.data.identity import Caller
from mlplane.data.warehouse.params import Params
from mlplane.data.warehouse.rows import Rows
from mlplane.data.warehouse.service import load_backend
from mlplane.data.warehouse.settings import load_settings
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

ACCESS = "secretmanager.versions.access"
BACKENDS: dict[str, str] = {
    "embedded": "mlplane.data.graph.embedded:EmbeddedGraph",
    "neo4j": "mlplane.data.graph.neo4j:Neo4jGraph",
}
# `[data] secrets` -> the secrets SDK's backend name
SECRETS_BACKENDS = {"local": "local", "secret-manager": "gcp"}


class Graph:
    """The project's graph database as the acting principal may read it. Cypher names
    parameters `$name` on every backend."""

    def __init__(self, caller: Caller, backend: GraphBackend, secret: str) -> None:
        self.caller = caller
        self.backend = backend
        self.secret = secret

    @classmethod
    def open(
        cls,
        project_file: Path | str | None = None,
        principal: Principal | str | None = None,
        backend: str | GraphBackend | None = None,
    ) -> Graph:
        """For the acting principal (see `Caller.resolve`), on `backend` ('embedded',
        'neo4j', an instance, or by default the project's `[data] graph`)."""
        caller = Caller.resolve(project_file, principal)
        settings = load_settings(caller.project_file)
        if backend is None or isinstance(backend, str):
            secrets_backend = SECRETS_BACKENDS.get(settings.data.secrets, "local")

            def credential() -> bytes:
                from mlplane.data.secrets import open_secrets

                store = open_secrets(caller.project_file, caller.principal, secrets_backend)
                return store.get(settings.graph_secret).reveal()

            chosen: GraphBackend = load_backend(  # type: ignore[assignment]
                BACKENDS, backend or settings.data.graph, settings, credential
            )
            backend = chosen
        return cls(caller, backend, settings.graph_secret)

    @property
    def principal(self) -> Principal:
        return self.caller.principal

    def query(self, cypher: str, params: Params | None = None) -> Rows:
        self.caller.require(ACCESS, ResourceRef("secret", self.secret, self.caller.project))
        return self.backend.query(cypher, params)

    def close(self) -> None:
        """Release the backend's connections (the Neo4j driver's pool); idempotent."""
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> Graph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
