"""The Spanner backend, on the official client (google-cloud-spanner), imported lazily: nothing
from google is imported at module level, and the facade loads this module by name only when
`[data] oltp = "spanner"`. Reads run in a single-use read-only snapshot (strong reads) on
`[data] spanner_instance` / `spanner_database`. The client honours $SPANNER_EMULATOR_HOST.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import Any

from mlplane.data.warehouse.errors import NotFound, QueryError, require_package
from mlplane.data.warehouse.params import Params, bind
from mlplane.data.warehouse.rows import Rows
from mlplane.data.warehouse.settings import DataSettings
from mlplane.errors import MlplaneError, PermissionDenied, TransientError

STORE = "spanner"
_NO_TABLE = re.compile(r"Table not found: ([\w.`]+)")


def param_type(value: object) -> Any:
    """The google.cloud.spanner_v1 param type a Python value binds as."""
    from google.cloud.spanner_v1 import param_types as pt

    if isinstance(value, list | tuple):
        first = next((v for v in value if v is not None), None)
        array: Any = pt.Array  # untyped in the client
        return array(param_type(first))
    for kind, code in (
        (bool, pt.BOOL),
        (int, pt.INT64),
        (float, pt.FLOAT64),
        (decimal.Decimal, pt.NUMERIC),
        (bytes, pt.BYTES),
        (dt.datetime, pt.TIMESTAMP),
        (dt.date, pt.DATE),
    ):
        if isinstance(value, kind):
            return code
    return pt.STRING


def map_error(exc: Exception, database: str) -> MlplaneError:
    from google.api_core import exceptions as gexc

    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, gexc.NotFound):
        return NotFound(STORE, "database", database, message)
    table = _NO_TABLE.match(message)
    if isinstance(exc, gexc.InvalidArgument) and table:
        return NotFound(STORE, "table", table.group(1))
    if isinstance(exc, gexc.PermissionDenied):
        return PermissionDenied(f"{STORE}: {database}: denied by Spanner: {message}")
    if isinstance(exc, gexc.TooManyRequests | gexc.ServerError | gexc.Aborted):
        return TransientError(f"{STORE}: {database}: {message}", delay=1.0)
    if isinstance(exc, gexc.GoogleAPICallError):
        return QueryError(STORE, message)
    raise exc


class SpannerOltp:
    name = STORE

    def __init__(self, project: str, instance: str, database: str, client: Any = None) -> None:
        self.project = project
        self.instance = instance
        self.database_id = database
        self._client = client
        self._database: Any = None

    @classmethod
    def for_settings(cls, settings: DataSettings) -> SpannerOltp:
        require_package("google.cloud.spanner", "google-cloud-spanner", STORE)
        data = settings.data
        return cls(settings.project, data.spanner_instance, data.spanner_database)

    @property
    def path(self) -> str:
        return f"projects/{self.project}/instances/{self.instance}/databases/{self.database_id}"

    @property
    def database(self) -> Any:
        if self._database is None:
            if self._client is None:
                import google.cloud.spanner as spanner

                self._client = spanner.Client(project=self.project)
            self._database = self._client.instance(self.instance).database(self.database_id)
        return self._database

    def read(self, sql: str, params: Params | None) -> Rows:
        from google.api_core.exceptions import GoogleAPICallError

        bound = bind(STORE, sql, params, "@")
        types = {k: param_type(v) for k, v in bound.params.items()}
        try:
            with self.database.snapshot() as snapshot:
                result = snapshot.execute_sql(
                    bound.text, params=bound.params or None, param_types=types or None
                )
                rows = tuple(tuple(r) for r in result)
                columns = tuple(f.name for f in (result.fields or ()))
        except GoogleAPICallError as exc:
            raise map_error(exc, self.path) from None
        return Rows(columns, rows)
