"""The autoscaler's decision function, driven by a fake clock: no processes, no sleeps."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mlplane.model.compute import (
    Autoscaler,
    AutoscalingPolicy,
    Backend,
    BackendService,
    FixedOrPercent,
    ScaleInControl,
    UtilizationTarget,
)
from mlplane.providers.local.agent.autoscaling import (
    LoadSample,
    ScalerState,
    ScalingPolicy,
    decide,
    policy_of,
)


@dataclass
class FakeGroup:
    """Drives `decide` the way the agent's loop does, with time under the test's control."""

    policy: ScalingPolicy
    size: int = 1
    now: float = 1000.0
    requests: int = 0
    state: ScalerState = field(default_factory=ScalerState)
    reasons: list[str] = field(default_factory=list)

    def tick(self, in_flight: float = 0.0, rps: float = 0.0, dt: float = 1.0) -> int:
        self.now += dt
        self.requests += int(rps * dt)
        sample = LoadSample(self.now, in_flight, self.requests)
        d = decide(self.policy, self.state, self.size, sample, self.now)
        self.state, self.size = d.state, d.size
        self.reasons.append(d.reason)
        return d.size


def policy(**kw: object) -> ScalingPolicy:
    base: dict[str, object] = {
        "min_replicas": 1,
        "max_replicas": 10,
        "signal": "in_flight",
        "target_per_replica": 1.0,
        "cool_down_sec": 0.0,
    }
    return ScalingPolicy(**(base | kw))  # type: ignore[arg-type]


def test_scales_out_to_ceil_of_load_over_target_within_bounds() -> None:
    g = FakeGroup(policy(target_per_replica=0.8, max_replicas=5))
    assert g.tick(in_flight=2.0) == 3  # ceil(2 / 0.8)
    assert g.tick(in_flight=0.8) == 1  # exactly one replica's worth
    assert g.tick(in_flight=40.0) == 5  # capped at max
    assert g.tick(in_flight=0.0) == 1  # floored at min


def test_cool_down_holds_the_size_after_a_resize() -> None:
    g = FakeGroup(policy(cool_down_sec=60.0))
    assert g.tick(in_flight=3.0) == 3
    assert g.tick(in_flight=6.0, dt=30) == 3  # new replicas still initializing
    assert g.reasons[-1].startswith("cool-down")
    assert g.tick(in_flight=0.0, dt=20) == 3  # no scale in during the period either
    assert g.tick(in_flight=6.0, dt=11) == 6  # 61 s after the resize
    assert g.tick(in_flight=0.0, dt=61) == 1


def test_scale_in_control_limits_the_drop_from_the_peak_in_its_window() -> None:
    g = FakeGroup(policy(scale_in_fixed=2, scale_in_window_sec=120.0), size=1)
    assert g.tick(in_flight=8.0) == 8
    assert g.tick(in_flight=0.0) == 6  # at most 2 below the peak of 8
    assert g.tick(in_flight=0.0, dt=60) == 6
    assert g.tick(in_flight=0.0, dt=61) == 1  # the peak left the window


def test_scale_in_control_in_percent_of_the_peak() -> None:
    g = FakeGroup(policy(scale_in_percent=50, scale_in_window_sec=300.0), size=1)
    assert g.tick(in_flight=10.0) == 10
    assert g.tick(in_flight=1.0) == 5


def test_stabilization_scales_in_only_to_the_recent_maximum() -> None:
    g = FakeGroup(policy(stabilization_sec=10.0))
    assert g.tick(in_flight=4.0) == 4
    assert g.tick(in_flight=1.0, dt=5) == 4
    assert g.tick(in_flight=1.0, dt=6) == 1


def test_rate_signal_uses_requests_per_second_between_samples() -> None:
    g = FakeGroup(policy(signal="rps", target_per_replica=10.0))
    assert g.tick(rps=100.0) == 1  # the first sample has no rate yet: hold
    assert g.tick(rps=100.0) == 10
    assert g.tick(rps=25.0) == 3


@pytest.mark.parametrize(
    ("mode", "expected"), [("OFF", [2, 2]), ("ONLY_SCALE_OUT", [5, 5]), ("ON", [5, 1])]
)
def test_modes(mode: str, expected: list[int]) -> None:
    g = FakeGroup(policy(mode=mode), size=2)
    assert [g.tick(in_flight=5.0), g.tick(in_flight=0.0)] == expected


def test_min_and_max_apply_even_when_off_or_cooling() -> None:
    g = FakeGroup(policy(min_replicas=2, max_replicas=3, mode="OFF"), size=7)
    assert g.tick() == 3
    g = FakeGroup(policy(min_replicas=2, cool_down_sec=600.0), size=0)
    assert g.tick() == 2


def autoscaler(**policy_kw: object) -> Autoscaler:
    return Autoscaler(
        name="s-as",
        zone="us-central1-a",
        target="zones/us-central1-a/instanceGroupManagers/s-mig",
        autoscaling_policy=AutoscalingPolicy(max_num_replicas=4, **policy_kw),  # type: ignore[arg-type]
    )


def test_policy_of_reads_the_autoscaler_and_its_backends() -> None:
    p = policy_of(
        autoscaler(
            min_num_replicas=2,
            cool_down_period_sec=30,
            load_balancing_utilization=UtilizationTarget(utilization_target=0.5),
            scale_in_control=ScaleInControl(
                max_scaled_in_replicas=FixedOrPercent(percent=25), time_window_sec=120
            ),
        ),
        [],
    )
    assert (p.min_replicas, p.max_replicas, p.cool_down_sec) == (2, 4, 30.0)
    assert (p.signal, p.target_per_replica) == ("in_flight", 0.5)
    assert (p.scale_in_percent, p.scale_in_window_sec) == (25, 120.0)
    rate = BackendService(
        name="s-bes",
        health_checks=("global/healthChecks/s-hc",),
        backends=(
            Backend(
                group="zones/us-central1-a/instanceGroups/s-mig",
                balancing_mode="RATE",
                max_rate_per_instance=50.0,
            ),
        ),
    )
    p = policy_of(autoscaler(), [rate])
    assert (p.signal, p.target_per_replica, p.min_replicas, p.cool_down_sec) == (
        "rps",
        0.8 * 50.0,
        1,
        60.0,
    )


def test_the_sampler_reads_the_mean_load_from_busy_request_seconds() -> None:
    """One reading a tick: the mean in flight is the change of busy request-seconds over the
    time between readings, however many requests came and went in between."""
    from mlplane.providers.local.agent.scalers import ScalerLoop
    from mlplane.providers.local.dataplane.protocol import Load

    class Group:
        name = "s-mig"
        target_size = 1
        sizes: list[int] = []

        def resize(self, size: int) -> None:
            self.sizes.append(size)
            self.target_size = size

    group = Group()
    readings = [(Load(0, 0, 0.0), 10.0), (Load(0, 500, 3.0), 11.0), (Load(2, 900, 3.5), 12.0)]
    loop = ScalerLoop(
        autoscaler(cool_down_period_sec=0),
        lambda: group,  # type: ignore[arg-type,return-value]
        lambda name: readings.pop(0),
        lambda: [],
    )
    decisions = [loop.tick(float(t)) for t in (10, 11, 12)]
    loads = [d.load for d in decisions if d is not None]
    assert loads == [0.0, 3.0, 0.5]  # in flight now at first, then 3.0/1 s and 0.5/1 s
    assert group.sizes == [4, 1]  # ceil(3.0 / 0.8) capped at max 4, then back to min 1
