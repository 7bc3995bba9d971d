"""What an OLTP backend implements: read-only SQL. Backends do not authorize (the `Oltp` facade
does) and raise only mlplane errors (ParameterError, QueryError, NotFound, TransientError,
PermissionDenied), never a driver's."""

from __future__ import annotations

from typing import Protocol

from mlplane.data.warehouse.params import Params
from mlplane.data.warehouse.rows import Rows


class OltpBackend(Protocol):
    name: str

    def read(self, sql: str, params: Params | None) -> Rows:
        """Run a read-only query whose parameters are named `@name` (as Spanner names them)
        in a read-only transaction / on a read-only connection."""
        ...
