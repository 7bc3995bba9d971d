"""Typed results shared by the warehouse, OLTP and graph stores: `Rows` (a query's columns and
values) and the warehouse's table metadata. Frozen dataclasses; no SDK type crosses them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Rows:
    """A query result: column names and rows of plain Python values, in column order."""

    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[tuple[object, ...]]:
        return iter(self.rows)

    def dicts(self) -> list[dict[str, object]]:
        """Each row as {column: value}."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list[object]:
        """Every value of one column."""
        try:
            i = self.columns.index(name)
        except ValueError:
            raise KeyError(f"no column '{name}' (columns: {', '.join(self.columns)})") from None
        return [row[i] for row in self.rows]


@dataclass(frozen=True)
class Column:
    """A table column: its name, type as BigQuery names it (INT64, STRING, ...) and mode."""

    name: str
    type: str
    mode: str = "NULLABLE"


@dataclass(frozen=True)
class TableInfo:
    """A warehouse table's metadata."""

    dataset: str
    table: str
    columns: tuple[Column, ...]
    num_rows: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.dataset}.{self.table}"
