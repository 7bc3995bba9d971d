"""Immutable value objects for start-up-critical paths.

`dataclasses` costs ~7 ms to import (it pulls in `inspect`) and ~1 ms per class to generate
code; the types on `mlplane iam check`'s path use this base instead (docs/decisions/0005).
Subclasses list their fields in `__slots__` and assign them in `__init__` via `_set`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (start-up path)

if TYPE_CHECKING:
    from typing import Self


class Value:
    """Equality, hashing, ordering and repr by the `__slots__` fields; assignment is refused."""

    __slots__: tuple[str, ...] = ()

    def _set(self, **fields: object) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def fields(self) -> dict[str, object]:
        """The fields by name, in `__slots__` order (what a JSON view of the value shows)."""
        return {s: getattr(self, s) for s in self.__slots__}

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Value) and type(other) is type(self) and self._key() == other._key()
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._key()))

    def __lt__(self, other: Self) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _lt(self._key(), other._key())

    def __repr__(self) -> str:
        args = ", ".join(f"{s}={getattr(self, s)!r}" for s in self.__slots__)
        return f"{type(self).__name__}({args})"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), self._key())


def _lt(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    for x, y in zip(a, b, strict=True):
        if x != y:
            return bool(x < y)  # type: ignore[operator]
    return False
