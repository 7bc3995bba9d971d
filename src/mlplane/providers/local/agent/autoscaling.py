"""The autoscaler's decision as a pure function of (policy, state, load sample, clock).

    recommendation = ceil(load / target_per_replica), clamped to [min, max]

Load is what the local load balancer measures for the backend services in front of the group:
requests in flight, or requests per second for RATE backends (`maxRatePerInstance`). Then, as
on GCP:
- coolDownPeriodSec: after a resize, the new replicas' start-up would distort the load, so the
  size is held (no scale out, no scale in) until the period has passed;
- scaleInControl: the size may not drop more than `maxScaledInReplicas` (fixed or percent)
  below the peak recommendation of the last `timeWindowSec`;
- stabilizationPeriodSec: scale in only to the highest recommendation of that period;
- mode OFF holds the size, ONLY_SCALE_OUT never scales in; min/max always apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from mlplane.model.compute import Autoscaler, BackendService

# A local replica at 100 % "utilization" serves this many requests at once.
LOCAL_CONCURRENCY_CAPACITY = 1.0
DEFAULT_COOL_DOWN = 60.0

Signal = Literal["in_flight", "rps"]


@dataclass(frozen=True)
class ScalingPolicy:
    min_replicas: int
    max_replicas: int
    signal: Signal
    target_per_replica: float
    cool_down_sec: float = DEFAULT_COOL_DOWN
    mode: Literal["ON", "OFF", "ONLY_SCALE_OUT"] = "ON"
    scale_in_fixed: int | None = None
    scale_in_percent: int | None = None
    scale_in_window_sec: float = 0.0
    stabilization_sec: float = 0.0

    def max_scale_in(self, peak: int) -> int | None:
        if self.scale_in_fixed is not None:
            return self.scale_in_fixed
        if self.scale_in_percent is not None:
            return peak * self.scale_in_percent // 100
        return None


@dataclass(frozen=True)
class LoadSample:
    at: float
    in_flight: float
    requests_total: int


@dataclass(frozen=True)
class ScalerState:
    last_sample: LoadSample | None = None
    last_resize_at: float | None = None
    history: tuple[tuple[float, int], ...] = ()  # (time, recommendation)


@dataclass(frozen=True)
class ScalingDecision:
    size: int
    state: ScalerState
    load: float | None
    recommendation: int
    reason: str


def decide(
    policy: ScalingPolicy, state: ScalerState, current: int, sample: LoadSample, now: float
) -> ScalingDecision:
    load = _load(policy, state.last_sample, sample)
    state = replace(state, last_sample=sample)
    low, high = policy.min_replicas, policy.max_replicas
    raw = current if load is None else math.ceil(load / policy.target_per_replica - 1e-9)
    raw = min(max(raw, low), high)
    keep = max(policy.scale_in_window_sec, policy.stabilization_sec)
    history = (*((t, r) for t, r in state.history if now - t <= keep), (now, raw))
    state = replace(state, history=history)
    bounded = min(max(current, low), high)
    if bounded != current:
        return _resize(state, bounded, load, raw, now, f"outside [{low}, {high}]")
    if policy.mode == "OFF":
        return ScalingDecision(current, state, load, raw, "mode OFF")
    cooling = state.last_resize_at is not None and now - state.last_resize_at < policy.cool_down_sec
    if raw > current:
        if cooling:
            return ScalingDecision(current, state, load, raw, "cool-down: holding size")
        return _resize(state, raw, load, raw, now, "scale out")
    if raw < current:
        if policy.mode == "ONLY_SCALE_OUT":
            return ScalingDecision(current, state, load, raw, "mode ONLY_SCALE_OUT")
        if cooling:
            return ScalingDecision(current, state, load, raw, "cool-down: holding size")
        target = _scale_in_target(policy, history, raw, now)
        if target < current:
            return _resize(state, target, load, raw, now, "scale in")
        return ScalingDecision(current, state, load, raw, "scale in held by scale-in controls")
    return ScalingDecision(current, state, load, raw, "at recommendation")


def _load(policy: ScalingPolicy, last: LoadSample | None, sample: LoadSample) -> float | None:
    if policy.signal == "in_flight":
        return sample.in_flight
    if last is None or sample.at <= last.at:
        return None
    return max(sample.requests_total - last.requests_total, 0) / (sample.at - last.at)


def _scale_in_target(
    policy: ScalingPolicy, history: tuple[tuple[float, int], ...], raw: int, now: float
) -> int:
    target = raw
    if policy.stabilization_sec > 0:
        recent = [r for t, r in history if now - t <= policy.stabilization_sec]
        target = max(target, *recent)
    if policy.scale_in_window_sec > 0:
        peak = max(r for t, r in history if now - t <= policy.scale_in_window_sec)
        allowed = policy.max_scale_in(peak)
        if allowed is not None:
            target = max(target, peak - allowed)
    return target


def _resize(
    state: ScalerState, size: int, load: float | None, raw: int, now: float, why: str
) -> ScalingDecision:
    return ScalingDecision(size, replace(state, last_resize_at=now), load, raw, why)


def policy_of(autoscaler: Autoscaler, backends: list[BackendService]) -> ScalingPolicy:
    """The local policy of an autoscaler whose group is served by `backends`."""
    p = autoscaler.autoscaling_policy
    util = p.load_balancing_utilization or p.cpu_utilization
    target_util = util.utilization_target if util else 0.8
    signal: Signal = "in_flight"
    target = target_util * LOCAL_CONCURRENCY_CAPACITY
    group = autoscaler.target.rsplit("/", 1)[-1]
    for bes in backends:
        for b in bes.backends:
            rate = b.max_rate_per_instance
            if b.balancing_mode == "RATE" and rate and b.group.rsplit("/", 1)[-1] == group:
                signal, target = "rps", target_util * rate
    sic = p.scale_in_control
    return ScalingPolicy(
        min_replicas=p.min_num_replicas if p.min_num_replicas is not None else 1,
        max_replicas=p.max_num_replicas,
        signal=signal,
        target_per_replica=target,
        cool_down_sec=float(
            p.cool_down_period_sec if p.cool_down_period_sec is not None else DEFAULT_COOL_DOWN
        ),
        mode=p.mode or "ON",
        scale_in_fixed=sic.max_scaled_in_replicas.fixed if sic else None,
        scale_in_percent=sic.max_scaled_in_replicas.percent if sic else None,
        scale_in_window_sec=float(sic.time_window_sec) if sic else 0.0,
        stabilization_sec=float(p.stabilization_period_sec or 0),
    )
