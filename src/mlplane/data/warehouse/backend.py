"""What a warehouse backend implements. Backends query and describe; they do not authorize (the
`Warehouse` facade does, for every backend alike) and they raise only mlplane errors
(ParameterError, QueryError, NotFound, TransientError, PermissionDenied), never an SDK's."""

from __future__ import annotations

import re
from typing import Protocol

from mlplane.data.warehouse.params import Params
from mlplane.data.warehouse.rows import Rows, TableInfo
from mlplane.errors import ConfigError

# BigQuery's rules, narrowed to what every backend can name without quoting surprises.
_DATASET = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,1023}")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,1023}")


def check_dataset(name: str) -> str:
    if not isinstance(name, str) or not _DATASET.fullmatch(name):
        raise ConfigError("dataset", "", f"{name!r} is not a dataset id (letters, digits, _)")
    return name


def check_table(name: str) -> str:
    if not isinstance(name, str) or not _TABLE.fullmatch(name):
        raise ConfigError("table", "", f"{name!r} is not a table id (letters, digits, _, -)")
    return name


class WarehouseBackend(Protocol):
    name: str

    def query(self, sql: str, params: Params | None) -> Rows:
        """Run a read query whose parameters are named `@name`."""
        ...

    def list_datasets(self) -> tuple[str, ...]: ...

    def list_tables(self, dataset: str) -> tuple[str, ...]:
        """Table ids of `dataset`, sorted; NotFound if the dataset does not exist."""
        ...

    def get_table(self, dataset: str, table: str) -> TableInfo:
        """NotFound if the dataset or table does not exist."""
        ...
