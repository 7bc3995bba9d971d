"""ReplicaView is a plain value class (it is on `mlplane status`'s start-up path)."""

from __future__ import annotations

import pytest

from mlplane.providers.replica_view import ReplicaView


def view(**changes: object) -> ReplicaView:
    fields: dict[str, object] = {
        "group": "svc-r1-mig",
        "name": "svc-r1-abcd",
        "pid": 10,
        "port": 8080,
        "metadata_port": 9090,
        "status": "RUNNING",
        "health": "HEALTHY",
        "service_account": "mlplane-serving-runtime@p.iam.gserviceaccount.com",
    }
    return ReplicaView(**(fields | changes))  # type: ignore[arg-type]


def test_equal_by_value_hashable_and_immutable() -> None:
    assert view() == view() and hash(view()) == hash(view())
    assert view(restarts=1) != view()
    assert len({view(), view(), view(pid=11)}) == 2
    with pytest.raises(AttributeError, match="immutable"):
        view().pid = 3  # type: ignore[misc]


def test_json_round_trip_ignores_unknown_fields() -> None:
    v = view(restarts=2)
    assert ReplicaView.from_json(v.to_json() | {"later": "field"}) == v
    assert "pid=10" in repr(v)
