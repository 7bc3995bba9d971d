"""Parameter binding shared by every store: references are found outside string literals,
quoted identifiers and comments (per language), and mismatches are named."""

from __future__ import annotations

import pytest

from mlplane.data.warehouse.errors import ParameterError
from mlplane.data.warehouse.params import bind


def names(text: str, sigil: str = "@") -> tuple[str, ...]:
    return bind("s", text, {n: 1 for n in _refs(text, sigil)}, sigil).names


def _refs(text: str, sigil: str) -> list[str]:
    from mlplane.data.warehouse.params import _scan

    return [n for _, n in _scan(text, sigil)]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT @a, @b, @a", ("a", "b")),
        ("SELECT '@no', \"@no\", `@no` , @yes", ("yes",)),
        ("SELECT 'it''s @no', @yes", ("yes",)),
        ("SELECT @yes -- @no\n, @also", ("yes", "also")),
        ("SELECT @yes # @no\n", ("yes",)),
        ("SELECT /* @no */ @yes", ("yes",)),
        ("SELECT 4 // 2, @yes", ("yes",)),  # DuckDB integer division, not a comment in SQL
        ("SELECT @@session.time_zone, @yes", ("yes",)),  # a system variable
        ("SELECT 'a\\'@no', @yes", ("yes",)),
        ("SELECT email FROM t WHERE email LIKE '%@%' AND id = @id", ("id",)),
    ],
)
def test_sql_references(sql: str, expected: tuple[str, ...]) -> None:
    assert names(sql) == expected


def test_cypher_references_and_comments() -> None:
    cypher = "MATCH (u {name: '$no'}) // $no\nWHERE u.id = $id -- $minus\nRETURN u"
    assert names(cypher, "$") == ("id", "minus")  # `--` is not a comment in Cypher


def test_rewriting_to_another_sigil_leaves_strings_alone() -> None:
    bound = bind("s", "SELECT '@keep', @a + @a", {"a": 1}, "@", "$")
    assert bound.text == "SELECT '@keep', $a + $a"
    assert bound.params == {"a": 1}


def test_every_mismatch_is_named_at_once() -> None:
    with pytest.raises(ParameterError) as info:
        bind("duckdb", "SELECT @a, @b", {"b": 1, "c": 2, "d": 3})
    text = str(info.value)
    assert text.startswith("duckdb: params: ")
    assert "the query uses @a but no value was given" in text
    assert "given 'c', 'd' but the query has no @c, @d" in text


def test_values_that_do_not_bind_are_named_even_inside_lists() -> None:
    with pytest.raises(ParameterError, match="'ids' has a value of type set"):
        bind("s", "SELECT @ids", {"ids": [[1], {2}]})
