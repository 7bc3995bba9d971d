"""Named query parameters, checked the same way for every backend before a store sees them.

SQL (BigQuery, Spanner, and so the local DuckDB and SQLite stores) names parameters `@name`;
Cypher names them `$name`. `bind` finds the names a query uses, outside string literals, quoted
identifiers and comments, and raises ParameterError when the given parameters do not match them
exactly, so a typo fails with a message naming the parameter, on every backend alike.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Mapping
from dataclasses import dataclass

from mlplane.data.warehouse.errors import ParameterError

Params = Mapping[str, object]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SCALARS: tuple[type, ...] = (
    bool,
    int,
    float,
    str,
    bytes,
    decimal.Decimal,
    dt.date,
    dt.datetime,
)


@dataclass(frozen=True)
class BoundQuery:
    """A query whose parameters matched: the names in order of first use, and the query with
    each `<sigil>name` replaced by `<target>name` (for a store with another sigil)."""

    text: str
    names: tuple[str, ...]
    params: dict[str, object]


def _scan(text: str, sigil: str) -> list[tuple[int, str]]:
    """(offset, name) of each parameter reference outside quotes and comments."""
    out: list[tuple[int, str]] = []
    line_comments = ("//",) if sigil == "$" else ("--", "#")  # Cypher | SQL (GoogleSQL: #)
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"`":
            end = i + 1
            while end < n and text[end] != ch:
                end += 2 if text[end] == "\\" else 1
            i = end + 1
        elif any(text.startswith(c, i) for c in line_comments):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == sigil:
            if text.startswith(sigil * 2, i):  # @@system_variable
                i += 2
                continue
            m = _IDENT.match(text, i + 1)
            if m:
                out.append((i, m.group()))
                i = m.end()
            else:
                i += 1
        else:
            i += 1
    return out


def check_value(store: str, name: str, value: object) -> None:
    if value is None or isinstance(value, SCALARS):
        return
    if isinstance(value, list | tuple):
        for item in value:
            check_value(store, name, item)
        return
    raise ParameterError(
        store,
        f"parameter '{name}' has a value of type {type(value).__name__}, which does not bind "
        "(use None, bool, int, float, str, bytes, Decimal, date, datetime, or a list of them)",
    )


def bind(
    store: str, text: str, params: Params | None, sigil: str = "@", target: str | None = None
) -> BoundQuery:
    """Check `params` against the `<sigil>name` references in `text`; raise ParameterError
    naming every parameter that is missing or unused."""
    if not text or not text.strip():
        raise ParameterError(store, "the query is empty")
    given = dict(params or {})
    for key in given:
        if not isinstance(key, str) or not _IDENT.fullmatch(key):
            raise ParameterError(store, f"parameter name {key!r} is not an identifier")
    refs = _scan(text, sigil)
    names = tuple(dict.fromkeys(name for _, name in refs))
    missing = [n for n in names if n not in given]
    unused = [k for k in given if k not in names]
    problems = []
    if missing:
        problems.append(
            "the query uses "
            + ", ".join(f"{sigil}{n}" for n in missing)
            + " but no value was given"
        )
    if unused:
        problems.append(
            "given "
            + ", ".join(f"'{k}'" for k in unused)
            + " but the query has no "
            + ", ".join(f"{sigil}{k}" for k in unused)
        )
    if problems:
        raise ParameterError(store, "; ".join(problems))
    for key, value in given.items():
        check_value(store, key, value)
    if target and target != sigil:
        pieces, last = [], 0
        for offset, _ in refs:
            pieces.append(text[last:offset])
            pieces.append(target)
            last = offset + 1
        pieces.append(text[last:])
        text = "".join(pieces)
    return BoundQuery(text, names, given)
