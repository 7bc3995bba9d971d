"""Plain, aligned tables as gcloud prints lists (upper-case headers, two spaces between
columns). Stdlib only: for commands on the fast path, where rich's import would dominate."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The table as text; the last column is not padded. Empty cells print as '-'."""
    cells = [[h.upper() for h in headers]] + [[c or "-" for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)] + [row[-1]]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)
