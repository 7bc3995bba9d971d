"""Sets of permissions as bits of a Python int, for audits at scale.

Every permission of the catalog gets one bit, in sorted name order; a permission outside it (a
custom role's typo, a new one) gets the next free bit when first seen. Unions, differences and
intersections are then single big-int operations on ~1.6 KB numbers instead of hash-set work
on thousands of strings, a set costs its bit width instead of ~40 bytes an element, and the
sorted names of a set come out of its bits in order without a sort (docs/decisions/0201).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import compress, islice

_ZERO_ONE = bytes.maketrans(b"01", b"\x00\x01")


class PermissionSpace:
    def __init__(self, names: Iterable[str]) -> None:
        self.names: list[str] = sorted(set(names))
        self.quoted: list[str] = [json.dumps(n) for n in self.names]  # JSON string literals
        self.sorted_until = len(self.names)  # bits below this are in name order
        self.bit: dict[str, int] = {n: i for i, n in enumerate(self.names)}

    def mask(self, permissions: Iterable[str]) -> int:
        bits = bytearray((len(self.names) + 8) // 8 + 1)
        extra = 0
        for p in permissions:
            i = self.bit.get(p)
            if i is None:
                i = self.bit[p] = len(self.names)
                self.names.append(p)
                self.quoted.append(json.dumps(p))
                extra |= 1 << i
                continue
            bits[i >> 3] |= 1 << (i & 7)
        return int.from_bytes(bits, "little") | extra

    @staticmethod
    def _selectors(mask: int) -> tuple[int, bytes]:
        """(the lowest set bit, one byte per bit from there: 1 where the permission is in the
        set). Sets cluster by service in name order, so the span is usually short."""
        low = (mask & -mask).bit_length() - 1
        return low, bin(mask >> low)[:1:-1].encode().translate(_ZERO_ONE)

    def _pick(self, table: list[str], mask: int, limit: int | None) -> list[str]:
        if not mask or limit == 0:
            return []
        low, selectors = self._selectors(mask)
        picked = compress(table[low : low + len(selectors)], selectors)
        if mask >> self.sorted_until:  # names added after the catalog: sort them in
            everything = sorted(picked)
            return everything if limit is None else everything[:limit]
        return list(picked if limit is None else islice(picked, limit))

    def names_of(self, mask: int, limit: int | None = None) -> list[str]:
        """The names of `mask`'s permissions in sorted order (the first `limit` of them)."""
        return self._pick(self.names, mask, limit)

    def json_array(self, mask: int, limit: int | None = None) -> str:
        """`names_of(mask, limit)` as a JSON array, joined from pre-encoded names."""
        return "[" + ", ".join(self._pick(self.quoted, mask, limit)) + "]"

    def as_set(self, mask: int) -> frozenset[str]:
        return frozenset(self._pick(self.names, mask, None))
