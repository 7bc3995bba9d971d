"""The BigQuery backend, on the official client (google-cloud-bigquery), imported lazily: this
module imports nothing from google at module level, and the facade loads it by name only when
`[data] warehouse = "bigquery"`.

$MLPLANE_BIGQUERY_ENDPOINT (e.g. `http://127.0.0.1:9050`, a local bqemulator) points the client
at an emulator with anonymous credentials; otherwise Application Default Credentials are used.
Results are read through the REST API (no Storage Read API client: `create_bqstorage_client` is
never requested), so the `bigquery.readsessions.*` permissions are not exercised by this SDK.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import os
import re
from typing import Any

from mlplane.data.warehouse.backend import check_dataset, check_table
from mlplane.data.warehouse.errors import NotFound, QueryError, require_package
from mlplane.data.warehouse.params import Params, bind
from mlplane.data.warehouse.rows import Column, Rows, TableInfo
from mlplane.data.warehouse.settings import DataSettings
from mlplane.errors import MlplaneError, PermissionDenied, TransientError

STORE = "bigquery"
ENDPOINT_ENV = "MLPLANE_BIGQUERY_ENDPOINT"
QUERY_TIMEOUT = 300.0
_NOT_FOUND = re.compile(r"Not found: (Table|Dataset) ([^ ]+?)(?: was not found|$|\s)")


# Legacy SQL type names that tables.get may report -> the GoogleSQL names TableInfo uses.
STANDARD_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}


def scalar_type(value: object) -> str:
    """The BigQuery type a Python parameter value binds as."""
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, decimal.Decimal):
        return "NUMERIC"
    if isinstance(value, bytes):
        return "BYTES"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP" if value.tzinfo else "DATETIME"
    if isinstance(value, dt.date):
        return "DATE"
    return "STRING"  # str, and None (a NULL STRING)


def query_parameters(params: dict[str, object]) -> list[Any]:
    """google.cloud.bigquery query parameters for checked `params` (see params.check_value)."""
    import google.cloud.bigquery as bigquery

    out: list[Any] = []
    for name, given in params.items():
        value: Any = given
        if isinstance(value, list | tuple):
            first = next((v for v in value if v is not None), None)
            out.append(bigquery.ArrayQueryParameter(name, scalar_type(first), list(value)))
        else:
            out.append(bigquery.ScalarQueryParameter(name, scalar_type(value), value))
    return out


def map_error(exc: Exception, what: str) -> MlplaneError:
    """google-api-core exceptions as mlplane errors; anything else is re-raised by the caller."""
    from google.api_core import exceptions as gexc

    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, gexc.NotFound):
        m = _NOT_FOUND.search(message)
        if m:
            return NotFound(STORE, m.group(1).lower(), m.group(2).rstrip(":;,"))
        return NotFound(STORE, "resource", what, message)
    if isinstance(exc, gexc.Forbidden):
        return PermissionDenied(f"{STORE}: {what}: denied by BigQuery: {message}")
    if isinstance(exc, gexc.TooManyRequests | gexc.ServerError):
        return TransientError(f"{STORE}: {what}: {message}", delay=2.0)
    if isinstance(exc, gexc.GoogleAPICallError):
        return QueryError(STORE, message)
    raise exc


class BigQueryWarehouse:
    name = STORE

    def __init__(self, project: str, client: Any = None, endpoint: str | None = None) -> None:
        self.project = project
        self._client = client
        self.endpoint = endpoint

    @classmethod
    def for_settings(cls, settings: DataSettings) -> BigQueryWarehouse:
        require_package("google.cloud.bigquery", "google-cloud-bigquery", STORE)
        return cls(settings.project, endpoint=os.environ.get(ENDPOINT_ENV) or None)

    @property
    def client(self) -> Any:
        if self._client is None:
            import google.cloud.bigquery as bigquery

            if self.endpoint:
                from google.api_core.client_options import ClientOptions
                from google.auth.credentials import AnonymousCredentials

                anonymous: Any = AnonymousCredentials  # untyped constructor

                self._client = bigquery.Client(
                    project=self.project,
                    credentials=anonymous(),
                    client_options=ClientOptions(api_endpoint=self.endpoint),
                )
            else:
                self._client = bigquery.Client(project=self.project)
        return self._client

    def query(self, sql: str, params: Params | None) -> Rows:
        import google.cloud.bigquery as bigquery
        from google.api_core.exceptions import GoogleAPICallError

        bound = bind(STORE, sql, params, "@")
        config = bigquery.QueryJobConfig(query_parameters=query_parameters(bound.params))
        try:
            result = self.client.query(bound.text, job_config=config).result(timeout=QUERY_TIMEOUT)
            columns = tuple(f.name for f in result.schema)
            rows = tuple(tuple(row.values()) for row in result)
        except GoogleAPICallError as exc:
            raise map_error(exc, "query") from None
        return Rows(columns, rows)

    def list_datasets(self) -> tuple[str, ...]:
        from google.api_core.exceptions import GoogleAPICallError

        try:
            return tuple(sorted(d.dataset_id for d in self.client.list_datasets(self.project)))
        except GoogleAPICallError as exc:
            raise map_error(exc, "list datasets") from None

    def list_tables(self, dataset: str) -> tuple[str, ...]:
        from google.api_core.exceptions import Forbidden, GoogleAPICallError
        from google.api_core.exceptions import NotFound as GNotFound

        check_dataset(dataset)
        ref = f"{self.project}.{dataset}"
        try:
            tables = tuple(sorted(t.table_id for t in self.client.list_tables(ref)))
            if not tables:  # an empty dataset, or (on some emulators) a missing one
                with contextlib.suppress(Forbidden):  # cannot tell: report it empty
                    self.client.get_dataset(ref)
            return tables
        except GNotFound:
            raise NotFound(STORE, "dataset", dataset) from None
        except GoogleAPICallError as exc:
            raise map_error(exc, f"list tables of {dataset}") from None

    def get_table(self, dataset: str, table: str) -> TableInfo:
        from google.api_core.exceptions import GoogleAPICallError
        from google.api_core.exceptions import NotFound as GNotFound

        check_dataset(dataset)
        check_table(table)
        try:
            got = self.client.get_table(f"{self.project}.{dataset}.{table}")
        except GNotFound:
            raise NotFound(STORE, "table", f"{dataset}.{table}") from None
        except GoogleAPICallError as exc:
            raise map_error(exc, f"get table {dataset}.{table}") from None
        columns = tuple(
            Column(
                f.name,
                STANDARD_TYPES.get(str(f.field_type), str(f.field_type)),
                str(f.mode or "NULLABLE"),
            )
            for f in got.schema
        )
        num = got.num_rows
        return TableInfo(dataset, table, columns, int(num) if num is not None else None)
