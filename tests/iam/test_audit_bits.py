"""Permission sets as bits: the names come back exactly, in name order, also for names outside
the catalog, and as JSON."""

from __future__ import annotations

import json
import random

from mlplane.iam.audit.bits import PermissionSpace


def test_round_trip_in_name_order() -> None:
    names = [f"svc{i % 7}.res{i % 13}.verb{i}" for i in range(3000)]
    space = PermissionSpace(names)
    rng = random.Random(3)
    for size in (0, 1, 2, 9, 500, 3000):
        subset = rng.sample(names, size)
        mask = space.mask(subset)
        assert space.names_of(mask) == sorted(subset)
        assert space.names_of(mask, 5) == sorted(subset)[:5]
        assert space.as_set(mask) == frozenset(subset)
        assert json.loads(space.json_array(mask, 3)) == sorted(subset)[:3]
        assert mask.bit_count() == size


def test_names_outside_the_catalog_sort_in() -> None:
    space = PermissionSpace(["b.x.get", "d.x.get"])
    mask = space.mask(["d.x.get", "c.custom.verb", "a.custom.verb", "b.x.get"])
    assert space.names_of(mask) == ["a.custom.verb", "b.x.get", "c.custom.verb", "d.x.get"]
    assert space.names_of(mask, 2) == ["a.custom.verb", "b.x.get"]
    assert space.mask(["c.custom.verb"]) & mask  # the same bit the second time
    weird = space.mask(['say "hi"'])
    assert json.loads(space.json_array(weird)) == ['say "hi"']
