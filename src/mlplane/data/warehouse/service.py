"""`Warehouse`: the data SDK's warehouse API. Every call is authorized for the acting principal
(`Caller`) with the permissions BigQuery checks, before a backend is touched, the same way for
every backend: a query needs `bigquery.jobs.create` and `bigquery.tables.getData` on the
project (the `*.read-bigquery` actions), metadata calls `bigquery.datasets.get`,
`bigquery.tables.list` or `bigquery.tables.get` (`experimentation.read-bigquery-metadata`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from mlplane.data.identity import Caller
from mlplane.data.warehouse.backend import WarehouseBackend, check_dataset, check_table
from mlplane.data.warehouse.params import Params
from mlplane.data.warehouse.rows import Rows, TableInfo
from mlplane.data.warehouse.settings import DataSettings, load_settings
from mlplane.errors import ConfigError
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef

QUERY = ("bigquery.jobs.create", "bigquery.tables.getData")
LIST_DATASETS = "bigquery.datasets.get"
LIST_TABLES = "bigquery.tables.list"
GET_TABLE = "bigquery.tables.get"

# `[data] warehouse` -> "module:class"; imported on use, so the cloud SDK stays out of the static
# import graph of everything that imports the SDK (the "Cloud SDKs" import contract).
BACKENDS: dict[str, str] = {
    "duckdb": "mlplane.data.warehouse.local:LocalWarehouse",
    "bigquery": "mlplane.data.warehouse.bigquery:BigQueryWarehouse",
}


def load_backend(
    registry: dict[str, str], kind: str, settings: DataSettings, *extra: object
) -> object:
    """Instantiate registry[kind] via its `for_settings(settings, *extra)` classmethod."""
    if kind not in registry:
        raise ConfigError("backend", "", f"unknown backend '{kind}' ({', '.join(registry)})")
    module, _, cls = registry[kind].partition(":")
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            "backend", "", f"the '{kind}' backend needs a package that is not installed: {exc}"
        ) from None
    return getattr(loaded, cls).for_settings(settings, *extra)


class Warehouse:
    """The project's warehouse as the acting principal may read it. SQL names parameters
    `@name`, as BigQuery does, on every backend."""

    def __init__(self, caller: Caller, backend: WarehouseBackend) -> None:
        self.caller = caller
        self.backend = backend

    @classmethod
    def open(
        cls,
        project_file: Path | str | None = None,
        principal: Principal | str | None = None,
        backend: str | WarehouseBackend | None = None,
    ) -> Warehouse:
        """For the acting principal (see `Caller.resolve`), on `backend` ('duckdb', 'bigquery',
        an instance, or by default the project's `[data] warehouse`)."""
        caller = Caller.resolve(project_file, principal)
        if backend is None or isinstance(backend, str):
            settings = load_settings(caller.project_file)
            chosen: WarehouseBackend = load_backend(  # type: ignore[assignment]
                BACKENDS, backend or settings.data.warehouse, settings
            )
            backend = chosen
        return cls(caller, backend)

    @property
    def principal(self) -> Principal:
        return self.caller.principal

    def _project(self) -> ResourceRef:
        return ResourceRef.project_root(self.caller.project)

    def query(self, sql: str, params: Params | None = None) -> Rows:
        self.caller.require(QUERY, self._project())
        return self.backend.query(sql, params)

    def list_datasets(self) -> tuple[str, ...]:
        self.caller.require(LIST_DATASETS, self._project())
        return self.backend.list_datasets()

    def list_tables(self, dataset: str) -> tuple[str, ...]:
        check_dataset(dataset)
        self.caller.require(LIST_TABLES, self._project())
        return self.backend.list_tables(dataset)

    def get_table(self, dataset: str, table: str) -> TableInfo:
        check_dataset(dataset)
        check_table(table)
        self.caller.require(GET_TABLE, self._project())
        return self.backend.get_table(dataset, table)
