"""The Spanner backend, on the official client (google-cloud-spanner), imported lazily: nothing
from google is imported at module level, and the facade loads this module by name only when
`[data] oltp = "spanner"`. Reads run in a single-use read-only snapshot (strong reads) on
`[data] spanner_instance` / `spanner_database`. The client honours $SPANNER_EMULATOR_HOST.
"""

from __future__ import annotations

import base64
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
        values = {k: _to_spanner(v) for k, v in bound.params.items()}
        try:
            with self.database.snapshot() as snapshot:
                result = snapshot.execute_sql(
                    bound.text, params=values or None, param_types=types or None
                )
                raw = [tuple(r) for r in result]
                fields = tuple(result.fields or ())
        except GoogleAPICallError as exc:
            raise map_error(exc, self.path) from None
        decoders = [_decoder(f.type_) for f in fields]
        rows = tuple(
            tuple(d(v) if d else v for d, v in zip(decoders, row, strict=True)) for row in raw
        )
        return Rows(tuple(f.name for f in fields), rows)


# The client leaves BYTES in Spanner's wire form, base64 (seen against the emulator): parameters
# are encoded and results decoded here, so callers see bytes as the SQLite backend gives them.
def _to_spanner(value: object) -> object:
    if isinstance(value, bytes):
        return base64.b64encode(value)
    if isinstance(value, list | tuple):
        return [_to_spanner(v) for v in value]
    return value


def _decoder(type_: Any) -> Any:
    from google.cloud.spanner_v1 import TypeCode

    if type_.code == TypeCode.BYTES:
        return lambda v: None if v is None else base64.b64decode(v)
    if type_.code == TypeCode.ARRAY and type_.array_element_type.code == TypeCode.BYTES:
        return lambda v: (
            None if v is None else [None if x is None else base64.b64decode(x) for x in v]
        )
    return None
