"""The warehouse: BigQuery on GCP, a DuckDB file locally (`[data] warehouse`). Every call is
authorized for the acting principal as BigQuery IAM would decide it.

    from mlplane.data.warehouse import Warehouse

    wh = Warehouse.open()                                   # acting principal: Caller.resolve
    rows = wh.query("SELECT id, label FROM ds.events WHERE id > @min", {"min": 10})
    for row in rows.dicts(): ...
    wh.list_datasets(); wh.list_tables("ds"); wh.get_table("ds", "events")

Seed the local store with `LocalWarehouse.for_project(project_file).load_table(...)`
(mlplane.data.warehouse.local).
"""

from mlplane.data.warehouse.backend import WarehouseBackend
from mlplane.data.warehouse.errors import NotFound, ParameterError, QueryError
from mlplane.data.warehouse.rows import Column, Rows, TableInfo
from mlplane.data.warehouse.service import Warehouse

__all__ = [
    "Column",
    "NotFound",
    "ParameterError",
    "QueryError",
    "Rows",
    "TableInfo",
    "Warehouse",
    "WarehouseBackend",
]
