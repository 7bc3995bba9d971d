"""The local graph store: an embedded Cypher database (`ladybug`, the maintained successor of
kuzu) in one file, `.mlplane/data/graph.lbdb`.

Queries open it read-only: a read action cannot write. The embedded store has no credential of
its own; the facade still checks `secretmanager.versions.access` on the graph secret, so a
principal that could not read the Neo4j credential on GCP cannot read the local graph either.
`execute` (read-write) is how admins and tests seed it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mlplane.data.warehouse.errors import NotFound, QueryError, require_package
from mlplane.data.warehouse.params import Params, bind
from mlplane.data.warehouse.rows import Rows
from mlplane.data.warehouse.settings import DataSettings, data_dir

STORE = "embedded graph"
FILE = "graph.lbdb"
_NO_TABLE = re.compile(r"Table (\S+) does not exist")


def plain(value: object) -> object:
    """ladybug values as plain Python: internal keys lower-cased (`_label`, `_id`, ...)."""
    if isinstance(value, dict):
        return {(k.lower() if k.startswith("_") else k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class EmbeddedGraph:
    name = STORE

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_project(cls, project_file: Path) -> EmbeddedGraph:
        return cls(data_dir(project_file) / FILE)

    @classmethod
    def for_settings(cls, settings: DataSettings, credential: object = None) -> EmbeddedGraph:
        require_package("ladybug", "ladybug", STORE)
        return cls(settings.data_dir / FILE)

    def _run(self, cypher: str, params: dict[str, object], read_only: bool) -> Rows:
        import ladybug  # type: ignore[import-not-found, unused-ignore]

        db: Any = ladybug.Database(str(self.path), read_only=read_only)
        con: Any = ladybug.Connection(db)
        try:
            result = con.execute(cypher, params) if params else con.execute(cypher)
            results = result if isinstance(result, list) else [result]
            last = results[-1]
            columns = tuple(str(c) for c in last.get_column_names())
            rows = []
            while last.has_next():
                rows.append(tuple(plain(v) for v in last.get_next()))
            return Rows(columns, tuple(rows))
        except RuntimeError as exc:
            detail = str(exc).splitlines()[0]
            m = _NO_TABLE.search(detail)
            if m:
                raise NotFound(STORE, "node or relationship table", m.group(1)) from None
            raise QueryError(STORE, detail) from None
        finally:
            con.close()
            db.close()

    def query(self, cypher: str, params: Params | None) -> Rows:
        bound = bind(STORE, cypher, params, "$")
        if not self.path.exists():
            raise NotFound(
                STORE,
                "graph database",
                str(self.path),
                "nothing loaded yet: seed it with EmbeddedGraph.execute, "
                'or set [data] graph = "neo4j"',
            )
        return self._run(bound.text, bound.params, read_only=True)

    def execute(self, cypher: str, params: Params | None = None) -> Rows:
        """Run Cypher read-write (schema, CREATE, COPY FROM) to seed the store. Not
        authorized: the local stand-in for the pipelines that fill the graph database."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        bound = bind(STORE, cypher, params, "$")
        return self._run(bound.text, bound.params, read_only=False)
