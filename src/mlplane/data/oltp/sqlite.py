"""The local OLTP store: one SQLite file, `.mlplane/data/oltp.sqlite`.

Reads open the file read-only (`mode=ro` URI, and `PRAGMA query_only`): a read action cannot
write, whatever its SQL. SQLite binds `@name` parameters natively, as Spanner names them.
`execute_script` (read-write) is how admins and tests seed it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import sqlite3
import urllib.parse
from pathlib import Path

from mlplane.data.warehouse.errors import NotFound, ParameterError, QueryError
from mlplane.data.warehouse.params import Params, bind
from mlplane.data.warehouse.rows import Rows
from mlplane.data.warehouse.settings import DataSettings, data_dir

STORE = "sqlite"
FILE = "oltp.sqlite"
_NO_TABLE = re.compile(r"no such table: (\S+)")


def _sqlite_value(name: str, value: object) -> object:
    if isinstance(value, list | tuple):
        raise ParameterError(STORE, f"parameter '{name}': SQLite binds no arrays")
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


class LocalOltp:
    name = STORE

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_project(cls, project_file: Path) -> LocalOltp:
        return cls(data_dir(project_file) / FILE)

    @classmethod
    def for_settings(cls, settings: DataSettings) -> LocalOltp:
        return cls(settings.data_dir / FILE)

    def _connect_ro(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise NotFound(
                STORE,
                "OLTP database",
                str(self.path),
                "nothing loaded yet: seed it with LocalOltp.execute_script, "
                'or set [data] oltp = "spanner"',
            )
        uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
        con = sqlite3.connect(uri, uri=True)
        con.execute("PRAGMA query_only = ON")
        return con

    def read(self, sql: str, params: Params | None) -> Rows:
        bound = bind(STORE, sql, params, "@")
        values = {k: _sqlite_value(k, v) for k, v in bound.params.items()}
        con = self._connect_ro()
        try:
            cur = con.execute(bound.text, values)
            columns = tuple(d[0] for d in (cur.description or ()))
            rows = tuple(tuple(r) for r in cur.fetchall())
        except sqlite3.OperationalError as exc:
            m = _NO_TABLE.search(str(exc))
            if m:
                raise NotFound(STORE, "table", m.group(1)) from None
            raise QueryError(STORE, str(exc)) from None
        except sqlite3.Error as exc:
            raise QueryError(STORE, str(exc)) from None
        finally:
            con.close()
        return Rows(columns, rows)

    def execute_script(self, script: str) -> None:
        """Run DDL/DML (read-write) to seed the store. Not authorized: the local stand-in for
        the services that write Spanner."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path)
        try:
            con.executescript(script)
            con.commit()
        except sqlite3.Error as exc:
            raise QueryError(STORE, f"seeding {self.path}: {exc}") from None
        finally:
            con.close()
