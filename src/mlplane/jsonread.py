"""`json.loads` for the start-up path of everyday commands (decision 0017), without the `json`
package, whose decoder compiles regular expressions at import (`re`, and through it `enum`:
together about half of `python -c pass` again).

It drives the C scanner that `json.loads` itself uses (`_json.make_scanner`), configured as
`json`'s default decoder is. Any text it does not consume whole (an error, trailing data, a BOM,
bytes that are not plainly UTF-8) goes to `json.loads`, so the value or the error is always
exactly `json.loads`'s. Writing JSON stays with `json`: only reads are on the start-up path.
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's, without importing typing
if TYPE_CHECKING:
    from typing import Any, Protocol

    class _Readable(Protocol):
        def read(self) -> str | bytes: ...


_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_WHITESPACE = " \t\n\r"  # json.decoder.WHITESPACE's characters


class _Defaults:
    """What the scanner reads from its context: `json.JSONDecoder()`'s defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_CONSTANTS.__getitem__)


try:
    from _json import make_scanner as _make_scanner

    # typeshed types the context as a scanner; the C code reads only the attributes above
    _scan: Any = _make_scanner(_Defaults())  # type: ignore[arg-type]
except ImportError:  # an interpreter without the C accelerator: json.loads does all
    _scan = None


def loads(s: str | bytes | bytearray) -> Any:
    """As `json.loads(s)`: the same value, or the same error."""
    text = s if isinstance(s, str) else _utf8(s)
    if _scan is not None and text is not None and not text.startswith("\ufeff"):
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = _scan(text, start)
        except (StopIteration, ValueError):
            pass  # json.loads says what is wrong
        else:
            if end == len(text) or not text[end:].strip(_WHITESPACE):
                return value
    import json

    return json.loads(s)


def load(f: _Readable) -> Any:
    """As `json.load(f)`."""
    return loads(f.read())


def _utf8(b: bytes | bytearray) -> str | None:
    """`b` as text when `json.detect_encoding` would say plain UTF-8 (no BOM, no NUL in the first
    two bytes); None (json.loads decides) otherwise or when it is not valid UTF-8."""
    if b[:1] in (b"\xef", b"\xfe", b"\xff") or 0 in b[:2]:
        return None
    try:
        return bytes(b).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None
