"""The OLTP store: Spanner on GCP, a read-only SQLite file locally (`[data] oltp`). Reads are
authorized for the acting principal as Spanner IAM would decide them.

    from mlplane.data.oltp import Oltp

    rows = Oltp.open().read("SELECT id, name FROM users WHERE id = @id", {"id": 7})

Seed the local store with `LocalOltp.for_project(project_file).execute_script(...)`
(mlplane.data.oltp.sqlite).
"""

from mlplane.data.oltp.backend import OltpBackend
from mlplane.data.oltp.service import Oltp
from mlplane.data.warehouse.errors import NotFound, ParameterError, QueryError
from mlplane.data.warehouse.rows import Rows

__all__ = ["NotFound", "Oltp", "OltpBackend", "ParameterError", "QueryError", "Rows"]
