"""The Neo4j backend, on the official driver (`neo4j`), imported lazily: nothing from the
driver is imported at module level and the facade loads this module by name only when
`[data] graph = "neo4j"`.

It connects to `[data] neo4j_uri` with the read-only credential kept in the graph secret
(`[resources.secrets] graph`), read through the secrets store as the acting principal. The
secret holds `user:password`, or JSON `{"username": ..., "password": ..., "database": ...}`.
Queries run with `routing_=READ` (a reader in a cluster).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlplane.data.warehouse.errors import NotFound, QueryError, require_package
from mlplane.data.warehouse.params import Params, bind
from mlplane.data.warehouse.rows import Rows
from mlplane.data.warehouse.settings import DataSettings
from mlplane.errors import ConfigError, MlplaneError, PermissionDenied, TransientError

STORE = "neo4j"
DEFAULT_DATABASE = "neo4j"


@dataclass(frozen=True)
class Neo4jCredential:
    username: str
    password: str
    database: str = DEFAULT_DATABASE

    def __repr__(self) -> str:
        return f"Neo4jCredential(username={self.username!r}, password=<redacted>)"

    @classmethod
    def parse(cls, secret: str, raw: bytes) -> Neo4jCredential:
        text = raw.decode("utf-8", errors="replace").strip()
        if text.startswith("{"):
            try:
                data = json.loads(text)
                return cls(
                    str(data["username"]),
                    str(data["password"]),
                    str(data.get("database") or DEFAULT_DATABASE),
                )
            except (ValueError, KeyError, TypeError):
                pass
        elif ":" in text:
            user, _, password = text.partition(":")
            return cls(user, password)
        raise ConfigError(
            f"secret {secret}",
            "",
            'not a graph credential: expected "user:password" or JSON with username, password',
        )


def plain(value: object) -> object:
    """neo4j graph values as plain Python (nodes and relationships as property dicts)."""
    from neo4j.graph import Node, Path, Relationship  # type: ignore[import-not-found, unused-ignore]

    if isinstance(value, Node):
        return {**{k: plain(v) for k, v in value.items()}, "_label": ":".join(value.labels)}
    if isinstance(value, Relationship):
        return {**{k: plain(v) for k, v in value.items()}, "_label": value.type}
    if isinstance(value, Path):
        return [plain(n) for n in value.nodes]
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def map_error(exc: Exception, uri: str, database: str) -> MlplaneError:
    from neo4j import exceptions as nexc  # type: ignore[import-not-found, unused-ignore]

    code = getattr(exc, "code", None) or ""
    message = getattr(exc, "message", None) or str(exc)
    if code == "Neo.ClientError.Database.DatabaseNotFound":
        return NotFound(STORE, "database", database, f"on {uri}: {message}")
    if isinstance(exc, nexc.AuthError | nexc.Forbidden):
        return PermissionDenied(f"{STORE}: {uri}: denied by Neo4j: {message}")
    if isinstance(exc, nexc.ServiceUnavailable | nexc.SessionExpired | nexc.TransientError):
        return TransientError(f"{STORE}: {uri}: {message}", delay=2.0)
    if isinstance(exc, nexc.Neo4jError | nexc.DriverError):
        return QueryError(STORE, f"{code}: {message}" if code else message)
    raise exc


class Neo4jGraph:
    name = STORE

    def __init__(
        self, uri: str, credential: Callable[[], Neo4jCredential], driver: Any = None
    ) -> None:
        self.uri = uri
        self._credential = credential
        self._driver = driver
        self.database = DEFAULT_DATABASE

    @classmethod
    def for_settings(
        cls, settings: DataSettings, credential: Callable[[], bytes] | None = None
    ) -> Neo4jGraph:
        if credential is None:
            raise ConfigError("neo4j", "", "the Neo4j backend needs the graph credential")
        require_package("neo4j", "neo4j", STORE)
        secret = settings.graph_secret
        fetch = credential
        return cls(settings.data.neo4j_uri, lambda: Neo4jCredential.parse(secret, fetch()))

    @property
    def driver(self) -> Any:
        if self._driver is None:
            import neo4j  # type: ignore[import-not-found, unused-ignore]

            cred = self._credential()
            self.database = cred.database
            self._driver = neo4j.GraphDatabase.driver(self.uri, auth=(cred.username, cred.password))
        return self._driver

    def query(self, cypher: str, params: Params | None) -> Rows:
        import neo4j  # type: ignore[import-not-found, unused-ignore]

        bound = bind(STORE, cypher, params, "$")
        driver = self.driver
        try:
            result = driver.execute_query(
                bound.text,
                parameters_=bound.params,
                database_=self.database,
                routing_=neo4j.RoutingControl.READ,
            )
        except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError) as exc:
            raise map_error(exc, self.uri, self.database) from None
        columns = tuple(result.keys)
        rows = tuple(tuple(plain(v) for v in record.values()) for record in result.records)
        return Rows(columns, rows)

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
            self._driver = None
