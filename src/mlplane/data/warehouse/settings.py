"""The project's `[data]` switches and where the local stores keep their files.

Local data lives under the project's state dir, `.mlplane/data/` beside `mlplane.toml`:
`warehouse.duckdb` (the warehouse), `oltp.sqlite` (the OLTP store), `graph.lbdb` (the graph).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlplane.iam.loading import parse_model, read_toml
from mlplane.model.project import DataSection, ProjectFile


@dataclass(frozen=True)
class DataSettings:
    project: str
    data: DataSection
    graph_secret: str  # the resolved name of `[resources.secrets] graph`
    data_dir: Path


def data_dir(project_file: Path) -> Path:
    return Path(project_file).resolve().parent / ".mlplane" / "data"


def load_settings(project_file: Path) -> DataSettings:
    project = parse_model(ProjectFile, read_toml(Path(project_file)), str(project_file))
    graph = project.resolve(project.resources.secrets.get("graph", "graph-readonly"))
    return DataSettings(project.project.id, project.data, graph, data_dir(project_file))
