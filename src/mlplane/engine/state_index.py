"""What the state store records, without decoding the specs: the start-up path of
`mlplane status` (decision 0005: no dataclasses, pathlib or pydantic at import).

`read_index` answers from a database at the current schema version. It returns None when it
cannot (an older schema, which `StateStore` migrates, with a backup, before reading), and raises
the store's own errors (StateCorrupt, StateBusy, ...) for a damaged or locked file.
"""

from __future__ import annotations

import os

from mlplane.model.value import Value

try:  # sqlite3's own C module: the package adds only datetime adapters, which cost a third more
    from _sqlite3 import DatabaseError, connect
except ImportError:  # pragma: no cover (an interpreter without it)
    from sqlite3 import DatabaseError, connect


def index_sql(with_specs: tuple[str, ...] = ()) -> str:
    """The rows, with the spec's JSON (the API body) of the kinds in `with_specs` only."""
    kinds = ", ".join(f"'{k}'" for k in with_specs if k.isalnum()) or "''"
    return (
        f"SELECT kind, name, stack, version, updated_at, "
        f"CASE WHEN kind IN ({kinds}) THEN spec ELSE '' END FROM resources ORDER BY kind, name"
    )


class RecordIndex(Value):
    """One recorded resource: kind, name, owning stack, row version, last write time, and its
    spec as stored (the API body's JSON) when it was asked for, else ''."""

    __slots__ = ("kind", "name", "stack", "version", "updated_at", "spec")
    kind: str
    name: str
    stack: str
    version: int
    updated_at: float
    spec: str

    def __init__(
        self, kind: str, name: str, stack: str, version: int, updated_at: float, spec: str = ""
    ) -> None:
        self._set(
            kind=kind, name=name, stack=stack, version=version, updated_at=updated_at, spec=spec
        )


def rows_to_index(rows: list[tuple[str, str, str, int, float, str]]) -> list[RecordIndex]:
    return [RecordIndex(*row) for row in rows]


def read_index(
    path: str, schema_version: int, with_specs: tuple[str, ...] = (), busy_timeout: float = 30.0
) -> list[RecordIndex] | None:
    """The recorded resources of the database at `path` ([] when there is none yet), or None
    when its schema is not `schema_version`; with the specs of the kinds in `with_specs`."""
    if not os.path.exists(path):
        return []
    try:
        conn = connect(path, timeout=busy_timeout, isolation_level=None)
        try:
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) != schema_version:
                return None
            return rows_to_index(conn.execute(index_sql(with_specs)).fetchall())
        finally:
            conn.close()
    except DatabaseError as exc:
        from pathlib import Path

        from mlplane.engine.state import database_error

        raise database_error(Path(path), exc) from None
