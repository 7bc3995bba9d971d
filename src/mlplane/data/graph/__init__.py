"""The graph store: Neo4j on GCP, an embedded Cypher database locally (`[data] graph`). Queries
are authorized for the acting principal: reading the graph takes reading its credential.

    from mlplane.data.graph import Graph

    rows = Graph.open().query("MATCH (u:User)-[:FOLLOWS]->(v) WHERE u.id = $id RETURN v.id",
                              {"id": 7})

Seed the local store with `EmbeddedGraph.for_project(project_file).execute(...)`
(mlplane.data.graph.embedded).
"""

from mlplane.data.graph.backend import GraphBackend
from mlplane.data.graph.service import Graph
from mlplane.data.warehouse.errors import NotFound, ParameterError, QueryError
from mlplane.data.warehouse.rows import Rows

__all__ = ["Graph", "GraphBackend", "NotFound", "ParameterError", "QueryError", "Rows"]
