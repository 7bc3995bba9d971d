"""What a graph backend implements: read-only Cypher. Backends do not authorize (the `Graph`
facade does) and raise only mlplane errors (ParameterError, QueryError, NotFound,
TransientError, PermissionDenied), never a driver's.

Values come back as plain Python: a node or relationship as a dict of its properties plus
`_label` (and for the embedded store its internal `_id`/`_src`/`_dst` ids), a path as a list.
"""

from __future__ import annotations

from typing import Protocol

from mlplane.data.warehouse.params import Params
from mlplane.data.warehouse.rows import Rows


class GraphBackend(Protocol):
    name: str

    def query(self, cypher: str, params: Params | None) -> Rows:
        """Run a read-only Cypher query whose parameters are named `$name`."""
        ...
