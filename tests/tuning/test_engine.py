"""decide() around the rules: modes, pause, verification, cooldown, emergencies, barred moves, unknown
signals, verdicts and rollbacks, and compute_next_state()'s bookkeeping."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import tuning_builders as b

from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import (
    HISTORY_LIMIT,
    BarredMove,
    Baseline,
    ChangeRecord,
    ContainerResources,
    Edit,
    PoolSize,
    Setting,
    TuningState,
    Verdict,
)
from perfpilot.tuning import guardrails
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.engine import decide, resources_change_may_wait
from perfpilot.tuning.observations import Observations, PoolLive, Series
from perfpilot.tuning.state import compute_next_state
from perfpilot.tuning.thresholds import DEFAULT_THRESHOLDS
from perfpilot.tuning.verify import compute_baseline

NEEDS_CHANGE = {"request_rate_per_second": b.series([60.0 if i % 2 else 140.0 for i in range(b.SAMPLES)])}
EMERGENCY = {"latency_p95_seconds": b.series(1.2)}  # more than twice the 500ms SLO


def pending(*, minutes_ago: float, setting: Setting = Setting.HPA_CPU_TARGET, old: int = 60, new: int = 70,
            baseline: Baseline | None = None, coupled: Edit | None = None, verdict: Verdict = Verdict.PENDING,
            verdict_minutes_ago: float | None = None) -> TuningState:
    record = ChangeRecord(
        at=b.NOW - b.minutes(minutes_ago),
        target="HorizontalPodAutoscaler/api",
        setting=setting, from_value=old, to_value=new,
        coupled=coupled,
        baseline=baseline or Baseline(p95_latency_seconds=0.35, error_ratio=0.001, request_rate_per_second=100),
        verdict=verdict,
        verdict_at=None if verdict_minutes_ago is None else b.NOW - b.minutes(verdict_minutes_ago),
    )
    return TuningState(last_change=record)


# A pending move toward capacity (CPU target 80% -> 70%, in effect): an emergency during its verification acts
# on its own (a pending cut would be rolled back first).
RAISE_PENDING = pending(minutes_ago=2, old=80, new=70)

BIG_PODS = [b.container(cpu_request_millicores=1500, cpu_limit_millicores=3000)]
SMALL_PODS = [b.container()]


def resize_pending(*, cut: bool, minutes_ago: float = 16) -> TuningState:
    """A pending resources change with its coupled CPU target: a cut (1500m -> 1000m, 60% -> 70%) or a raise
    (1000m -> 1500m, 70% -> 60%)."""
    before, after = (BIG_PODS, SMALL_PODS) if cut else (SMALL_PODS, BIG_PODS)
    return TuningState(last_change=ChangeRecord(
        at=b.NOW - b.minutes(minutes_ago), target="Deployment/api",
        setting=Setting.RESOURCES, from_value=before, to_value=after,
        coupled=Edit(setting=Setting.HPA_CPU_TARGET, from_value=60, to_value=70) if cut else Edit(
            setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60),
        baseline=Baseline(p95_latency_seconds=0.3, error_ratio=0.001, request_rate_per_second=100),
    ))


def decide_on_resize(*, cut: bool, pods: list[ContainerResources], target_percent: int | None, p95_seconds: float,
                     minutes_ago: float = 16, **profile: Any) -> Any:
    """decide() on a pending ``resize_pending`` change with the live pods and CPU target given (no HPA for
    None), p95 at ``p95_seconds`` since the change."""
    hpa = b.hpa(cpu_target_percent=target_percent) if target_percent is not None else None
    observations = after_change(latency=p95_seconds, live=b.live(containers=tuple(pods), hpa=hpa))
    return decide_with(resize_pending(cut=cut, minutes_ago=minutes_ago), observations, **profile)


def decide_with(state: TuningState, observations: Observations | None = None, now: datetime = b.NOW,
                **profile: Any) -> Any:
    return decide(b.profile(**profile), observations or b.observations(), state, now)


# --- modes and pause --------------------------------------------------------------------------------


def test_off_mode_changes_nothing_and_says_so() -> None:
    decision = decide_with(b.EMPTY_STATE, b.observations(**NEEDS_CHANGE), mode="Off")
    assert (decision.change, decision.apply) == (None, False)
    assert decision.reason.startswith("Off")


def test_paused_workload_changes_nothing_and_says_so() -> None:
    decision = decide_with(b.EMPTY_STATE, b.observations(live=b.live(paused=True), **NEEDS_CHANGE))
    assert (decision.change, decision.apply) == (None, False)
    assert "paused" in decision.reason


def test_recommend_computes_the_same_change_as_auto_but_never_applies_it() -> None:
    observations = b.observations(**NEEDS_CHANGE)
    auto = decide_with(b.EMPTY_STATE, observations, mode="Auto")
    recommend = decide_with(b.EMPTY_STATE, observations, mode="Recommend")
    assert auto.apply is True and recommend.apply is False
    assert recommend.change == auto.change is not None


# --- verification and cooldown ---------------------------------------------------------------------


def test_no_ordinary_change_while_the_last_one_is_verified() -> None:
    decision = decide_with(pending(minutes_ago=5), b.observations(**NEEDS_CHANGE))
    assert decision.change is None
    assert "verifying" in decision.reason and "next:" in decision.reason
    assert decision.cooldown_until_seconds == (b.NOW + b.minutes(10)).timestamp()


def test_no_ordinary_change_during_cooldown_after_a_verdict() -> None:
    state = pending(minutes_ago=8, verdict=Verdict.KEPT, verdict_minutes_ago=1)
    decision = decide_with(state, b.observations(**NEEDS_CHANGE), guardrails={"verifyFor": "5m"})
    assert decision.change is None
    assert "cooldown" in decision.reason


def test_cooldown_after_a_rollback_counts_from_the_rollback() -> None:
    state = pending(minutes_ago=20, verdict=Verdict.ROLLED_BACK, verdict_minutes_ago=5)
    assert decide_with(state, b.observations(**NEEDS_CHANGE)).change is None


def test_changes_resume_after_cooldown() -> None:
    state = pending(minutes_ago=20, verdict=Verdict.KEPT, verdict_minutes_ago=5)
    assert decide_with(state, b.observations(**NEEDS_CHANGE)).change is not None


def test_an_emergency_acts_during_verification_toward_more_capacity() -> None:
    decision = decide_with(RAISE_PENDING, b.observations(**EMERGENCY))
    assert decision.change is not None and decision.change.emergency
    assert (decision.change.edit.setting, decision.change.edit.to_value) == (Setting.HPA_CPU_TARGET, 60)
    assert decision.apply is True


@pytest.mark.parametrize(("written_seconds_ago", "acts"), [(60, False), (119, False), (120, True)])
def test_an_emergency_waits_two_intervals_after_a_write_for_its_effect_to_show(written_seconds_ago: int,
                                                                               acts: bool) -> None:
    # The 80% -> 70% raise written under two intervals (60 s each) ago has not shown yet: no emergency on top.
    state = pending(minutes_ago=written_seconds_ago / 60, old=80, new=70)
    decision = decide_with(state, b.observations(**EMERGENCY))
    assert (decision.change is not None and decision.change.emergency) is acts
    if not acts:
        assert decision.change is None and "next: SLO emergency" in decision.reason  # held, named


@pytest.mark.parametrize(("latency", "emergency"), [(0.99, False), (1.01, True)])
def test_emergency_threshold_is_twice_the_slo(latency: float, emergency: bool) -> None:
    decision = decide_with(pending(minutes_ago=2), b.observations(latency_p95_seconds=b.series(latency)))
    assert (decision.change is not None) is emergency


def test_a_single_slow_sample_is_not_an_emergency() -> None:
    latency = b.series([0.35] * (b.SAMPLES - 1) + [1.5])
    assert decide_with(pending(minutes_ago=2), b.observations(latency_p95_seconds=latency)).change is None


def test_an_emergency_needs_every_sample_of_the_span_above_twice_the_slo_not_their_mean() -> None:
    # The last minutes at 3 s, 3 s and 0.9 s: a mean of 2.3 s is over twice the 500 ms SLO, but the last
    # sample is not, so the breach is not sustained.
    latency = b.series([0.35] * (b.SAMPLES - 3) + [3.0, 3.0, 0.9])
    decision = decide_with(pending(minutes_ago=2), b.observations(latency_p95_seconds=latency))
    assert decision.change is None, decision.reason
    idle = decide_with(b.EMPTY_STATE, b.observations(latency_p95_seconds=latency))
    assert "SLO emergency: no emergency (p95 down to 900ms <= 2 x SLO 500ms in the last 120s)" in idle.reason


def test_one_slow_scrape_after_a_gap_is_not_an_emergency() -> None:
    # The three samples before the newest are missing: the newest 1.2s alone does not cover 2 minutes.
    full = b.series(0.3)
    latency = Series(full.timestamps_seconds[:-3] + full.timestamps_seconds[-1:], (*full.values[:-3], 1.2))
    decision = decide_with(pending(minutes_ago=2), b.observations(latency_p95_seconds=latency))
    assert decision.change is None
    assert "do not cover the last 120s" in decide_with(b.EMPTY_STATE, b.observations(
        latency_p95_seconds=latency)).reason


def test_slow_samples_over_the_whole_two_minutes_after_a_gap_are_an_emergency() -> None:
    full = b.series(0.3)
    latency = Series(full.timestamps_seconds[:-6] + full.timestamps_seconds[-3:], full.values[:-6] + (1.2,) * 3)
    decision = decide_with(RAISE_PENDING, b.observations(latency_p95_seconds=latency))
    assert decision.change is not None and decision.change.emergency


def test_an_emergency_at_max_replicas_raises_max_replicas_within_the_ceiling() -> None:
    observations = b.observations(live=b.live(hpa=b.hpa(current_replicas=10)), replicas=b.series(10), **EMERGENCY)
    decision = decide_with(RAISE_PENDING, observations, hpa={"maxReplicasCeiling": 20})
    assert decision.change is not None
    assert (decision.change.edit.setting, decision.change.edit.to_value) == (Setting.HPA_MAX_REPLICAS, 15)


def test_an_emergency_with_no_capacity_move_left_holds() -> None:
    observations = b.observations(
        live=b.live(hpa=b.hpa(cpu_target_percent=50, scale_up=b.MODERATE_UP)), **EMERGENCY
    )
    decision = decide_with(pending(minutes_ago=2), observations, hpa={"scaleUp": "Moderate"})
    assert decision.change is None


def test_a_pool_emergency_grows_the_pool_during_cooldown() -> None:
    observations = b.observations(pool_client_waiting=b.series([0.0] * 24 + [4.0] * 7), pool_server_active=b.series(20))
    decision = decide_with(RAISE_PENDING, observations)
    assert decision.change is not None and decision.change.edit.setting is Setting.POOL_SIZE
    assert decision.change.emergency


# --- barred moves and unknown signals ---------------------------------------------------------------


def test_a_barred_move_is_skipped_and_the_next_rule_runs() -> None:
    observations = b.observations(**NEEDS_CHANGE)
    first = decide_with(b.EMPTY_STATE, observations)
    assert first.change is not None
    state = TuningState(barred=[BarredMove(setting=first.change.edit.setting, to_value=first.change.edit.to_value,
                                           until=b.NOW + b.minutes(30))])
    second = decide_with(state, observations)
    assert first.change.edit.setting is Setting.HPA_CPU_TARGET  # bursty: 70 -> 60
    assert second.change is not None
    assert second.change.edit.setting is Setting.HPA_SCALE_DOWN  # the next rule: bursty -> Slow


def test_an_expired_bar_no_longer_blocks() -> None:
    observations = b.observations(**NEEDS_CHANGE)
    first = decide_with(b.EMPTY_STATE, observations)
    assert first.change is not None
    state = TuningState(barred=[BarredMove(setting=first.change.edit.setting, to_value=first.change.edit.to_value,
                                           until=b.NOW)])
    assert decide_with(state, observations).change == first.change


@pytest.mark.parametrize("signal", ["latency_p95_seconds", "request_rate_per_second", "cpu_usage_millicores_per_pod",
                                    "cpu_throttled_ratio", "memory_working_set_bytes_per_pod", "replicas",
                                    "pool_server_active", "pool_client_waiting"])
def test_an_unknown_signal_is_listed_in_blocked_by_and_never_raises(signal: str) -> None:
    decision = decide_with(b.EMPTY_STATE, b.observations(**{signal: b.unknown()}))
    assert signal in decision.blocked_by


def test_all_signals_unknown_means_no_change() -> None:
    unknowns = {name: b.unknown() for name in (
        "latency_p95_seconds", "request_rate_per_second", "error_ratio", "cpu_usage_millicores_per_pod",
        "cpu_throttled_ratio", "memory_working_set_bytes_per_pod", "replicas", "pool_server_active",
        "pool_client_waiting", "pool_max_wait_seconds")}
    decision = decide_with(b.EMPTY_STATE, b.observations(**unknowns))
    assert decision.change is None
    assert "latency_p95_seconds" in decision.blocked_by


# --- verdicts and rollback ----------------------------------------------------------------------------


def after_change(*, latency: float = 0.35, errors: float = 0.001, rate: float = 100, **overrides: Any) -> Observations:
    values: dict[str, Any] = {
        "latency_p95_seconds": b.series(latency), "error_ratio": b.series(errors),
        "request_rate_per_second": b.series(rate), "live": b.live(hpa=b.hpa(cpu_target_percent=70)),
    }
    values.update(overrides)
    return b.observations(**values)


def test_no_regression_is_kept() -> None:
    decision = decide_with(pending(minutes_ago=16), after_change())
    assert decision.verdict is Verdict.KEPT


@pytest.mark.parametrize(("latency", "verdict"), [(0.54, Verdict.KEPT),       # above SLO, 8% worse than 0.5
                                                  (0.56, Verdict.ROLLED_BACK)])
def test_latency_regression_needs_above_slo_and_more_than_ten_percent_worse(latency: float, verdict: Verdict) -> None:
    state = pending(minutes_ago=16,
                    baseline=Baseline(p95_latency_seconds=0.5, error_ratio=0.001, request_rate_per_second=100))
    assert decide_with(state, after_change(latency=latency)).verdict is verdict


def test_latency_worse_but_within_the_slo_is_kept() -> None:
    state = pending(minutes_ago=16,
                    baseline=Baseline(p95_latency_seconds=0.2, error_ratio=0.001, request_rate_per_second=100))
    assert decide_with(state, after_change(latency=0.45)).verdict is Verdict.KEPT


@pytest.mark.parametrize(("errors", "verdict"), [(0.0059, Verdict.KEPT), (0.0061, Verdict.ROLLED_BACK)])
def test_error_regression_is_more_than_half_a_point(errors: float, verdict: Verdict) -> None:
    assert decide_with(pending(minutes_ago=16), after_change(errors=errors)).verdict is verdict


@pytest.mark.parametrize(("rate", "verdict"), [(129.0, Verdict.ROLLED_BACK), (131.0, Verdict.INCONCLUSIVE),
                                               (69.0, Verdict.INCONCLUSIVE)])
def test_load_moved_more_than_thirty_percent_is_inconclusive(rate: float, verdict: Verdict) -> None:
    decision = decide_with(pending(minutes_ago=16), after_change(latency=0.8, rate=rate))
    assert decision.verdict is verdict


@pytest.mark.parametrize(("before", "after", "verdict"), [
    (0.001, 0.006, Verdict.KEPT), (0.007, 0.012, Verdict.KEPT), (0.02, 0.025, Verdict.KEPT),
    (0.001, 0.00601, Verdict.ROLLED_BACK),
])
def test_an_error_ratio_exactly_half_a_point_up_is_not_more_than_half_a_point(
    before: float, after: float, verdict: Verdict
) -> None:
    # 0.025 - 0.02 is 0.005000000000000001 in floating point, and a mean of 0.006s can come out as
    # 0.006000000000000001: DESIGN's "more than" must not trip on either.
    state = pending(minutes_ago=16,
                    baseline=Baseline(p95_latency_seconds=0.35, error_ratio=before, request_rate_per_second=100))
    assert decide_with(state, after_change(errors=after)).verdict is verdict


@pytest.mark.parametrize(("before", "after", "verdict"), [(0.7, 0.91, Verdict.ROLLED_BACK),
                                                          (100.0, 130.0, Verdict.ROLLED_BACK),
                                                          (100.0, 130.1, Verdict.INCONCLUSIVE)])
def test_a_request_rate_exactly_thirty_percent_up_has_not_moved_more_than_thirty_percent(
    before: float, after: float, verdict: Verdict
) -> None:
    state = pending(minutes_ago=16,
                    baseline=Baseline(p95_latency_seconds=0.35, error_ratio=0.001, request_rate_per_second=before))
    assert decide_with(state, after_change(latency=0.8, rate=after)).verdict is verdict


def test_a_verdict_on_one_sample_after_the_change_is_inconclusive() -> None:
    # A p95 that passes the reader's rule for the whole window but holds a single sample in "after" (the last
    # 10 minutes): one slow minute is no evidence for a rollback, one good one none for Kept.
    def sparse(after_value: float) -> Series:
        full = b.series(0.35)
        stamps = [t for t in full.timestamps_seconds if t <= b.NOW.timestamp() - 600] + [b.NOW.timestamp()]
        return Series(tuple(stamps), tuple([0.35] * (len(stamps) - 1) + [after_value]))

    for after_value in (0.9, 0.3):
        decision = decide_with(pending(minutes_ago=16), after_change(latency_p95_seconds=sparse(after_value)))
        assert decision.verdict is Verdict.INCONCLUSIVE, decision.verdict_reason
        assert "p95 before or after the change unknown (or too few samples)" in decision.verdict_reason
        assert decision.change is None or not decision.change.rollback


def test_an_error_regression_is_rolled_back_with_p95_unknown() -> None:
    # Every request failing fast leaves no latency histogram to read; the error criterion stands on its own.
    decision = decide_with(pending(minutes_ago=16), after_change(latency_p95_seconds=b.unknown(), errors=0.3))
    assert decision.verdict is Verdict.ROLLED_BACK, decision.verdict_reason
    assert decision.change is not None and decision.change.rollback
    kept = decide_with(pending(minutes_ago=16), after_change(latency_p95_seconds=b.unknown()))
    assert kept.verdict is Verdict.INCONCLUSIVE and "no error regression" in kept.verdict_reason


@pytest.mark.parametrize(("setting", "old", "new", "bounds", "said"), [
    # A hand-set 95% stepped toward the bounds: going back would leave them further.
    (Setting.HPA_CPU_TARGET, 95, 85, {"cpuTarget": {"min": 50, "max": 80}},
     "hpa.cpuTarget 95% is outside the bounds 50%-80% (it is 85% now)"),
    # The bounds narrowed since the change.
    (Setting.HPA_MEMORY_TARGET, 70, 80, {"memoryTarget": {"min": 75, "max": 80}},
     "hpa.memoryTarget 70% is outside the bounds 75%-80%"),
])
def test_a_rollback_that_would_leave_the_bounds_is_not_written(
    setting: Setting, old: int, new: int, bounds: dict[str, Any], said: str
) -> None:
    live_hpa = b.hpa(cpu_target_percent=new) if setting is Setting.HPA_CPU_TARGET else b.hpa(
        memory_target_percent=new)
    observations = after_change(errors=0.05, live=b.live(hpa=live_hpa))
    state = pending(minutes_ago=16, setting=setting, old=old, new=new)
    decision = decide_with(state, observations, hpa=bounds)
    assert decision.verdict is Verdict.INCONCLUSIVE, decision.verdict_reason
    assert f"would leave the profile's bounds: {said}" in decision.verdict_reason
    assert decision.change is None or not decision.change.rollback
    # Bounds that hold the value before: rolled back.
    within = decide_with(state, observations, hpa={"cpuTarget": {"min": 50, "max": 95},
                                                  "memoryTarget": {"min": 70, "max": 80}})
    assert within.verdict is Verdict.ROLLED_BACK and within.change is not None and within.change.rollback


def test_a_pool_rollback_above_a_lowered_size_max_is_not_written() -> None:
    profile, state = _pool_shrink_pending(minutes_ago=16)
    observations = after_change(errors=0.05, live=b.live(
        pool=PoolLive(default_pool_size=20, reserve_pool_size=10, pooler_replicas=1)))
    lowered = profile.model_copy(update={"pool": profile.pool.model_copy(update={
        "size": profile.pool.size.model_copy(update={"max": 25})})})
    decision = decide(lowered, observations, state, b.NOW)
    assert decision.verdict is Verdict.INCONCLUSIVE, decision.verdict_reason
    assert "default_pool_size 30 is outside the bounds 5-25" in decision.verdict_reason
    assert decide(profile, observations, state, b.NOW).verdict is Verdict.ROLLED_BACK


def test_rollback_restores_exactly_the_previous_values_including_the_coupled_edit() -> None:
    # A cut (CPU request down, coupled target up): its rollback only adds capacity, so it may run above the SLO.
    decision = decide_on_resize(cut=True, pods=SMALL_PODS, target_percent=70, p95_seconds=0.9)
    assert decision.verdict is Verdict.ROLLED_BACK and decision.apply is True
    change = decision.change
    assert change is not None and change.rollback
    assert (change.target, change.edit.setting, change.edit.from_value, change.edit.to_value) == (
        "Deployment/api", Setting.RESOURCES, SMALL_PODS, BIG_PODS)
    assert change.coupled == Edit(setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60)
    assert change.coupled_target == "HorizontalPodAutoscaler/api"


def test_no_rollback_when_rollback_is_disabled() -> None:
    decision = decide_with(pending(minutes_ago=16), after_change(latency=0.9), guardrails={"rollback": False})
    assert decision.verdict is Verdict.KEPT
    assert decision.change is None or not decision.change.rollback


def test_no_rollback_when_someone_else_changed_the_value_since() -> None:
    observations = after_change(latency=0.9, live=b.live(hpa=b.hpa(cpu_target_percent=65)))
    decision = decide_with(pending(minutes_ago=16), observations)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert decision.change is None or not decision.change.rollback


def test_an_emergency_capacity_change_is_not_rolled_back_while_p95_is_still_above_the_slo() -> None:
    # The emergency lowered the target 70 -> 60 (more replicas); p95 went 1.05s -> 1.3s, still 2.6x the SLO.
    state = pending(minutes_ago=16, old=70, new=60,
                    baseline=Baseline(p95_latency_seconds=1.05, error_ratio=0.001, request_rate_per_second=100))
    state = TuningState(last_change=state.last_change.model_copy(update={"emergency": True})
                        if state.last_change else None)
    observations = after_change(latency=1.3, live=b.live(hpa=b.hpa(cpu_target_percent=60)))
    decision = decide_with(state, observations)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert "still above the SLO" in decision.verdict_reason
    assert decision.change is None or not decision.change.rollback
    assert decision.change is None or decision.change.edit.to_value != 70
    assert decision.barred_until is None
    new_state = compute_next_state(state, decision=decision, observations=observations, now=b.NOW, applied=True)
    assert new_state.barred == []


def test_an_error_regression_within_the_slo_still_rolls_back_a_capacity_change() -> None:
    state = pending(minutes_ago=16, old=70, new=60)
    observations = after_change(latency=0.4, errors=0.02, live=b.live(hpa=b.hpa(cpu_target_percent=60)))
    decision = decide_with(state, observations)
    assert decision.verdict is Verdict.ROLLED_BACK
    assert decision.change is not None and decision.change.edit.to_value == 70


def test_no_rollback_when_someone_else_changed_the_coupled_value_since() -> None:
    # The requests are still perfpilot's, but someone set the CPU target to 75% since.
    decision = decide_on_resize(cut=True, pods=SMALL_PODS, target_percent=75, p95_seconds=0.9)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert "coupled hpa.cpuTarget was changed by someone else" in decision.verdict_reason
    assert decision.change is None or not decision.change.rollback


def test_rollback_in_recommend_mode_is_not_applied() -> None:
    decision = decide_with(pending(minutes_ago=16), after_change(latency=0.9), mode="Recommend")
    assert decision.verdict is Verdict.ROLLED_BACK and decision.apply is False


def test_verdict_waits_for_verify_for() -> None:
    decision = decide_with(pending(minutes_ago=14), after_change(latency=0.9))
    assert decision.verdict is None and decision.change is None


# verifyFor 15m, window 30m, interval 1m: a verdict later than 15 + 30 + 1 minutes after the change is stale.
@pytest.mark.parametrize(("minutes_ago", "verdict"), [(46, Verdict.ROLLED_BACK), (47, Verdict.INCONCLUSIVE),
                                                      (60 * 24 * 3, Verdict.INCONCLUSIVE)])
def test_a_regression_judged_later_than_window_plus_interval_after_verification_is_not_rolled_back(
        minutes_ago: float, verdict: Verdict) -> None:
    # Resumed after Off, a pause or a stopped operator: the latency now is not this change's evidence.
    decision = decide_with(pending(minutes_ago=minutes_ago), after_change(latency=0.9))
    assert decision.verdict is verdict
    assert (decision.change is not None and decision.change.rollback) is (verdict is Verdict.ROLLED_BACK)
    if verdict is Verdict.INCONCLUSIVE:
        assert "after its verification ended" in decision.verdict_reason
        assert decision.barred_until is None


def _after_change_at(at: datetime, *, latency: float = 0.9, **live: Any) -> Observations:
    """``after_change`` observed at ``at``: the resized pods live, the CPU target at 70%."""
    return replace(after_change(latency=latency), at=at, latency_p95_seconds=b.series(latency, at=at),
                   error_ratio=b.series(0.001, at=at), request_rate_per_second=b.series(100, at=at),
                   live=b.live(containers=tuple(SMALL_PODS), hpa=b.hpa(cpu_target_percent=70), **live))


def _evaluate_every_ten_minutes(state: TuningState, *, minutes: int, **live: Any) -> TuningState:
    """``minutes`` of evaluations from b.NOW, each decision recorded (nothing written)."""
    for minute in range(0, minutes + 1, 10):
        at = b.NOW + b.minutes(minute)
        observations = _after_change_at(at, **live)
        decision = decide_with(state, observations, now=at)
        state = compute_next_state(state, decision=decision, observations=observations, now=at, applied=False)
    return state


def test_a_rollback_due_while_a_rollout_runs_waits_for_it_until_a_verify_for_after_it_fell_due() -> None:
    state = resize_pending(cut=True)  # verified until a minute ago: the rollback fell due then
    decision = decide_with(state, _after_change_at(b.NOW, rollout_in_progress=True))
    assert decision.change is None and decision.rollback_due and "waiting for the rollout" in decision.reason
    state = _evaluate_every_ten_minutes(state, minutes=10, rollout_in_progress=True)
    assert state.last_change is not None and state.last_change.verdict is Verdict.PENDING
    assert state.last_change.rollback_due_at == b.NOW + b.minutes(10)  # found due again at every evaluation
    # Ended in time: the rollback goes as soon as the rollout is over.
    ended = b.NOW + b.minutes(11)
    decision = decide_with(state, _after_change_at(ended), now=ended)
    assert decision.verdict is Verdict.ROLLED_BACK and decision.change is not None and decision.change.rollback


def test_a_rollback_supersedes_a_rollout_still_running_a_verify_for_after_it_fell_due() -> None:
    # The cut's own rollout is stuck (its new pods OOMKilled, say): waiting for it would leave the regression
    # in place for good, so the rollback's template replaces it.
    state = _evaluate_every_ten_minutes(resize_pending(cut=True), minutes=10, rollout_in_progress=True)
    stuck = b.NOW + b.minutes(14)
    decision = decide_with(state, _after_change_at(stuck, rollout_in_progress=True), now=stuck)
    assert decision.verdict is Verdict.ROLLED_BACK and decision.change is not None and decision.change.rollback


def test_a_due_rollback_left_through_a_long_pause_is_late_like_any_verdict() -> None:
    state = _evaluate_every_ten_minutes(resize_pending(cut=True), minutes=20, rollout_in_progress=True)
    resumed = b.NOW + b.minutes(20 + 60 * 24 * 3)  # paused for three days, then resumed
    decision = decide_with(state, _after_change_at(resumed), now=resumed)
    assert decision.verdict is Verdict.INCONCLUSIVE and "after its verification ended" in decision.verdict_reason


def test_an_emergency_makes_a_rollback_waiting_for_a_rollout_go_at_once() -> None:
    # A stuck rollout must not silence the emergency (p95 2.4x the SLO): the cut's due rollback is the move
    # toward capacity, and its template supersedes the rollout.
    decision = decide_with(resize_pending(cut=True), _after_change_at(b.NOW, latency=1.2, rollout_in_progress=True))
    assert decision.verdict is Verdict.ROLLED_BACK, decision.reason
    assert decision.change is not None and decision.change.rollback and decision.change.edit.to_value == BIG_PODS


def test_an_emergency_memory_raise_supersedes_a_rollout_in_progress() -> None:
    # p95 2.4x the SLO with the pods memory-bound (950Mi of 1Gi) and the CPU target already at its minimum: the
    # raise goes ahead of a rollout that may be stuck on those very pods; without the emergency it waits.
    def memory_bound(latency: float) -> Observations:
        return b.observations(latency_p95_seconds=b.series(latency),
                              memory_working_set_bytes_per_pod=b.series(950 * b.MI),
                              live=b.live(rollout_in_progress=True, hpa=b.hpa(cpu_target_percent=50)))

    emergency = decide_with(b.EMPTY_STATE, memory_bound(1.2))
    assert emergency.change is not None and emergency.change.emergency, emergency.reason
    assert emergency.change.edit.setting is Setting.RESOURCES
    calm = decide_with(b.EMPTY_STATE, memory_bound(0.35))
    assert calm.change is None or calm.change.edit.setting is not Setting.RESOURCES
    assert "resources change waits for the rollout in progress" in calm.reason


def test_a_cut_held_only_by_a_rate_near_the_weeks_peak_goes_after_a_day() -> None:
    # p95 roomy (350 ms), the rate at 90% of the week's peak all day: no quieter hour to wait for.
    def busy(at: datetime) -> Observations:
        return replace(_memory_cut_with_p95(0.35, at), request_rate_per_second=b.series(90, at=at),
                       peak_request_rate_per_second=100.0)

    first = decide(b.profile(), busy(b.NOW), b.EMPTY_STATE, b.NOW)
    assert first.waits_for_off_peak and first.change is None and "waits until" in first.reason
    state = compute_next_state(b.EMPTY_STATE, decision=first, observations=busy(b.NOW), now=b.NOW, applied=False)
    day_later = b.NOW + timedelta(hours=24, minutes=1)
    over = decide(b.profile(), busy(day_later), state, day_later)
    assert over.change is not None and over.change.edit.setting is Setting.RESOURCES, over.reason


def test_only_a_due_rollback_is_recorded_due_and_a_verdict_clears_it() -> None:
    verifying = pending(minutes_ago=5)
    regressing = after_change(latency=0.9)
    decision = decide_with(verifying, regressing)
    assert decision.verdict is None and not decision.rollback_due
    recorded = compute_next_state(verifying, decision=decision, observations=regressing, now=b.NOW, applied=False)
    assert recorded.last_change is not None and recorded.last_change.verdict is Verdict.PENDING
    assert recorded.last_change.rollback_due_at is None
    state = pending(minutes_ago=16)
    regressed = after_change(latency=0.9)
    decision = decide_with(state, regressed, mode="Recommend")
    due = compute_next_state(state, decision=decision, observations=regressed, now=b.NOW, applied=False)
    assert due.last_change is not None and due.last_change.rollback_due_at == b.NOW
    decision = decide_with(due, regressed)
    rolled = compute_next_state(due, decision=decision, observations=regressed, now=b.NOW, applied=True)
    assert rolled.last_change is not None and rolled.last_change.verdict is Verdict.ROLLED_BACK
    assert rolled.last_change.rollback_due_at is None


def test_a_rollback_shown_in_recommend_mode_stays_due_past_the_late_limit() -> None:
    state = pending(minutes_ago=16)
    for minute in range(0, 61, 10):  # the last evaluation is 76 minutes after the change, past the 46-minute limit
        at = b.NOW + b.minutes(minute)
        observations = _after_change_at(at)
        decision = decide_with(state, observations, now=at, mode="Recommend")
        assert decision.verdict is Verdict.ROLLED_BACK and decision.apply is False
        state = compute_next_state(state, decision=decision, observations=observations, now=at, applied=False)


def test_the_stale_limit_follows_the_profiles_window_and_interval() -> None:
    guardrails = {"window": "10m", "interval": "5m", "verifyFor": "15m"}
    assert decide_with(pending(minutes_ago=30), after_change(latency=0.9),
                       guardrails=guardrails).verdict is Verdict.ROLLED_BACK
    assert decide_with(pending(minutes_ago=31), after_change(latency=0.9),
                       guardrails=guardrails).verdict is Verdict.INCONCLUSIVE


def test_a_change_found_reverted_long_after_its_verification_is_still_reverted_and_barred() -> None:
    # Being late does not make a change that is no longer in effect one that is.
    state = pending(minutes_ago=60 * 24)
    decision = decide_with(state, after_change(latency=0.9, live=b.live(hpa=b.hpa(cpu_target_percent=60))))
    assert decision.verdict is Verdict.REVERTED
    assert decision.barred_until is not None


# --- compute_next_state -------------------------------------------------------------------------------


def test_an_applied_change_becomes_the_pending_last_change_with_a_baseline() -> None:
    observations = b.observations(**NEEDS_CHANGE)
    decision = decide_with(b.EMPTY_STATE, observations)
    state = compute_next_state(b.EMPTY_STATE, decision=decision, observations=observations, now=b.NOW, applied=True)
    assert state.last_change is not None and decision.change is not None
    assert state.last_change.verdict is Verdict.PENDING
    assert state.last_change.edit == decision.change.edit
    assert state.last_change.at == b.NOW
    assert state.last_change.baseline.request_rate_per_second == pytest.approx(100, rel=0.1)
    assert state.last_change.baseline.p95_latency_seconds == pytest.approx(0.35)


def test_an_unwritten_change_is_not_recorded() -> None:
    observations = b.observations(**NEEDS_CHANGE)
    decision = decide_with(b.EMPTY_STATE, observations, mode="Recommend")
    state = compute_next_state(b.EMPTY_STATE, decision=decision, observations=observations, now=b.NOW, applied=False)
    assert state == b.EMPTY_STATE


def test_a_verdict_is_recorded_and_the_next_change_pushes_it_into_history() -> None:
    state = pending(minutes_ago=30)
    observations = after_change(**NEEDS_CHANGE)
    decision = decide_with(state, observations)
    assert decision.verdict is Verdict.KEPT and decision.change is not None
    new_state = compute_next_state(state, decision=decision, observations=observations, now=b.NOW, applied=True)
    assert new_state.history[-1].verdict is Verdict.KEPT
    assert new_state.history[-1].edit == Edit(setting=Setting.HPA_CPU_TARGET, from_value=60, to_value=70)
    assert new_state.last_change is not None and new_state.last_change.verdict is Verdict.PENDING


def test_an_applied_rollback_marks_the_change_rolled_back_and_bars_the_move_for_six_cooldowns() -> None:
    state = pending(minutes_ago=16)
    observations = after_change(latency=0.9)
    decision = decide_with(state, observations)
    new_state = compute_next_state(state, decision=decision, observations=observations, now=b.NOW, applied=True)
    assert new_state.last_change is not None and new_state.last_change.verdict is Verdict.ROLLED_BACK
    assert new_state.barred == [BarredMove(setting=Setting.HPA_CPU_TARGET, from_value=60, to_value=70,
                                           until=b.NOW + timedelta(minutes=60))]


@pytest.mark.parametrize(("earlier_rollbacks", "barred_minutes"), [
    (1, 120), (2, 240),  # doubled for each earlier rollback of the same move
    (20, 7 * 24 * 60),  # at most guardrails.peakWindow (a week)
])
def test_a_move_rolled_back_again_is_barred_twice_as_long_each_time(earlier_rollbacks: int,
                                                                     barred_minutes: int) -> None:
    # The same raise 60 -> 70 undone before: retried every 6 x cooldown, it breached the SLO for a quarter of
    # an hour each time, 39 writes a day. Another move undone (a Kept one, or one to 65) does not count.
    def earlier(to_value: int, verdict: Verdict) -> ChangeRecord:
        record = pending(minutes_ago=600, new=to_value, verdict=verdict).last_change
        assert record is not None
        return record
    history = [earlier(70, Verdict.ROLLED_BACK)] * earlier_rollbacks + [earlier(70, Verdict.KEPT),
                                                                       earlier(65, Verdict.ROLLED_BACK)]
    state = pending(minutes_ago=16).model_copy(update={"history": history[-20:]})
    observations = after_change(latency=0.9)
    decision = decide_with(state, observations)
    assert decision.verdict is Verdict.ROLLED_BACK
    new_state = compute_next_state(state, decision=decision, observations=observations, now=b.NOW, applied=True)
    assert new_state.barred == [BarredMove(setting=Setting.HPA_CPU_TARGET, from_value=60, to_value=70,
                                           until=b.NOW + timedelta(minutes=barred_minutes))]


@pytest.mark.parametrize(("minutes_ago", "p95_seconds"), [
    (17, 0.9),   # the regression is still in the window after
    (40, 0.35),  # down longer than verifyFor since the rollback: the window after shows only good latency
])
def test_a_rollback_written_just_before_a_restart_is_recorded_reverted_and_barred(
    minutes_ago: float, p95_seconds: float
) -> None:
    # The rollback 70 -> 60 reached the HPA but the status (still Pending) did not: the next cycle must not
    # call it someone else's change (nor judge it Kept), or the regressing move would come back unbarred.
    state = pending(minutes_ago=minutes_ago)
    observations = after_change(latency=p95_seconds, live=b.live(hpa=b.hpa(cpu_target_percent=60)))
    decision = decide_with(state, observations)
    assert decision.verdict is Verdict.REVERTED
    assert decision.change is None or decision.change.edit.to_value != 70
    assert "hpa.cpuTarget is back at its previous value" in decision.verdict_reason
    new_state = compute_next_state(state, decision=decision, observations=observations, now=b.NOW, applied=False)
    assert new_state.last_change is not None and new_state.last_change.verdict is Verdict.REVERTED
    assert new_state.barred == [BarredMove(setting=Setting.HPA_CPU_TARGET, from_value=60, to_value=70,
                                           until=b.NOW + timedelta(minutes=60))]


def test_a_reverted_change_is_not_a_write_so_an_emergency_acts_at_once() -> None:
    # Someone reverted 60 -> 70 back to 60 and p95 is over twice the SLO: nothing was written now, so neither
    # a cooldown nor the emergency's wait after a write starts from this verdict.
    state = pending(minutes_ago=16,
                    baseline=Baseline(p95_latency_seconds=1.15, error_ratio=0.001, request_rate_per_second=100))
    observations = after_change(latency=1.2, live=b.live(hpa=b.hpa(cpu_target_percent=60)))
    decision = decide_with(state, observations)
    assert decision.verdict is Verdict.REVERTED
    assert decision.change is not None and decision.change.emergency
    new_state = compute_next_state(state, decision=decision, observations=observations, now=b.NOW, applied=True)
    assert new_state.history[-1].verdict is Verdict.REVERTED
    assert [move.to_value for move in new_state.barred] == [70]


def test_a_regression_with_the_hpa_gone_is_not_taken_for_a_restored_value() -> None:
    observations = after_change(latency=0.9, live=b.live(hpa=None))
    decision = decide_with(pending(minutes_ago=16), observations)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert "hpa.cpuTarget's object is gone: the change is not in effect, so it is not judged; nothing rolled back" \
        in decision.verdict_reason


def test_a_reverted_record_does_not_start_a_cooldown() -> None:
    # Judged Reverted a minute ago, written 16 minutes ago: the 10-minute cooldown counts from the write.
    state = pending(minutes_ago=16, verdict=Verdict.REVERTED, verdict_minutes_ago=1)
    decision = decide_with(state, b.observations(**NEEDS_CHANGE))
    assert decision.change is not None, decision.reason


def test_the_move_found_reverted_is_barred_in_the_same_evaluation() -> None:
    # 60% -> 70% found back at 60%; with p95 low all window the Steady row would propose 70% again at once.
    state = pending(minutes_ago=16)
    observations = b.observations(latency_p95_seconds=b.series(0.2), live=b.live(hpa=b.hpa(cpu_target_percent=60)))
    decision = decide_with(state, observations)
    assert decision.verdict is Verdict.REVERTED
    assert decision.change is None or decision.change.edit.setting is not Setting.HPA_CPU_TARGET, decision.reason
    assert "move hpa.cpuTarget -> 70 is barred (rolled back or found reverted)" in decision.reason


def test_a_reverted_move_does_not_hold_the_setting_against_flapping() -> None:
    # The target was lowered 70% -> 60% two hours ago and found reverted: a raise to the Cost row's 80%
    # reverses nothing in effect, so the day's hold against flapping does not apply.
    state = pending(minutes_ago=120, old=70, new=60, verdict=Verdict.REVERTED, verdict_minutes_ago=100)
    observations = b.observations(latency_p95_seconds=b.series(0.2))
    decision = decide_with(state, observations, objective="Cost")
    assert decision.change is not None and decision.change.edit.setting is Setting.HPA_CPU_TARGET, decision.reason
    assert decision.change.edit.to_value == 80


def test_a_half_written_rollback_is_not_finished_when_the_rest_would_take_capacity_during_a_shortage() -> None:
    # The raise (CPU 1000m -> 1500m, target 70% -> 60%) half rolled back: the target (written first) is back at
    # 70%, the requests are still 1500m; undoing them now would take capacity away while p95 is over the SLO.
    decision = decide_on_resize(cut=False, pods=BIG_PODS, target_percent=70, p95_seconds=0.6)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert decision.change is None or not decision.change.rollback
    assert "rolling back resources" in decision.verdict_reason
    assert decision.verdict_reason.startswith("a rollback cut short between its writes (hpa.cpuTarget already back)")


@pytest.mark.parametrize("p95_seconds", [0.9, 0.3])  # still regressed, or fine again: judged afresh, Kept
@pytest.mark.parametrize("minutes_ago", [40, 600])  # however late: it was decided when it was written
def test_a_rollback_cut_short_between_its_writes_is_finished_whatever_the_latency(
        p95_seconds: float, minutes_ago: float) -> None:
    # A cut (CPU 1500m -> 1000m, target 60% -> 70%): its rollback wrote the target back to 60% (first), then
    # stopped; the requests are still 1000m. The rollback is issued again whole (writes are idempotent).
    decision = decide_on_resize(cut=True, pods=SMALL_PODS, target_percent=60, p95_seconds=p95_seconds,
                                minutes_ago=minutes_ago)
    assert decision.verdict is Verdict.ROLLED_BACK
    assert decision.change is not None and decision.change.rollback
    assert decision.change.edit.to_value == BIG_PODS
    assert decision.change.coupled == Edit(setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60)


@pytest.mark.parametrize("minutes_ago", [5, 16])  # during its verification too: the writes did not finish
def test_a_change_cut_short_between_its_writes_has_its_coupled_edit_undone(minutes_ago: float) -> None:
    # A cut (CPU 1500m -> 1000m, target 60% -> 70%) writes the target first: the target at 70% with the
    # requests still 1500m is a change whose writes stopped between the two (or whose requests someone put
    # back). The target alone would take replicas away for a cut that did not happen: undone, the move barred.
    decision = decide_on_resize(cut=True, pods=BIG_PODS, target_percent=70, p95_seconds=0.3, minutes_ago=minutes_ago)
    assert decision.verdict is Verdict.ROLLED_BACK, decision.reason
    assert decision.verdict_reason.startswith("the change was cut short between its writes")
    assert decision.change is not None and decision.change.rollback
    assert decision.change.coupled == Edit(setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60)
    assert decision.barred_until is not None


def test_a_change_cut_short_before_its_resources_write_is_undone_during_someone_elses_rollout() -> None:
    # Only the coupled target (60% -> 70%) was written; the requests are still 1500m, so undoing it writes the
    # HPA alone and stacks no rollout on the one in progress (an image update, say): it does not wait for it.
    observations = after_change(latency=0.3, live=b.live(containers=tuple(BIG_PODS), rollout_in_progress=True,
                                                         hpa=b.hpa(cpu_target_percent=70)))
    decision = decide_with(resize_pending(cut=True, minutes_ago=5), observations)
    assert decision.verdict is Verdict.ROLLED_BACK, decision.reason
    assert decision.change is not None and decision.change.rollback
    assert decision.change.coupled == Edit(setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60)


def test_a_change_cut_short_with_rollback_off_is_not_judged_as_if_it_were_in_effect() -> None:
    # The target written, the requests not: with rollback off the mix stays, and "no regression" would
    # credit a cut that never happened.
    decision = decide_on_resize(cut=True, pods=BIG_PODS, target_percent=70, p95_seconds=0.3,
                                guardrails={"rollback": False})
    assert decision.verdict is Verdict.INCONCLUSIVE, decision.verdict_reason
    assert decision.verdict_reason.startswith("resources is back at its previous value alone: the change is not "
                                              "in effect")


def test_a_change_cut_short_is_not_undone_when_that_takes_capacity_during_a_shortage() -> None:
    # A raise (1000m -> 1500m, 70% -> 60%) stopped after its target: 60% alone means more replicas; taking
    # them away while p95 is above the SLO waits (Inconclusive, kept).
    decision = decide_on_resize(cut=False, pods=SMALL_PODS, target_percent=60, p95_seconds=0.6, minutes_ago=5)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert decision.change is None or not decision.change.rollback


def test_a_change_never_written_is_found_reverted_during_its_verification() -> None:
    # Recorded Pending before its write (the writer's contract), then the write never happened (a crash): seen
    # at the next evaluation, the move barred, so a restarted operator does not take a second step from it.
    decision = decide_on_resize(cut=True, pods=BIG_PODS, target_percent=60, p95_seconds=0.3, minutes_ago=1)
    assert decision.verdict is Verdict.REVERTED
    assert decision.barred_until is not None


def test_a_regression_on_an_hpa_replaced_by_another_is_not_rolled_back_onto_either() -> None:
    # perfpilot moved HPA "api" 60% -> 70%; "api" was then replaced by "api-v2" (a KEDA ScaledObject's, say),
    # which happens to hold 70%: its value is not perfpilot's, and "api" is gone.
    observations = after_change(latency=0.9, live=b.live(hpa=b.hpa(name="api-v2", cpu_target_percent=70)))
    decision = decide_with(pending(minutes_ago=16), observations)
    assert decision.verdict is Verdict.INCONCLUSIVE, decision.verdict_reason
    assert ("hpa.cpuTarget's object is gone (HorizontalPodAutoscaler/api written, HorizontalPodAutoscaler/api-v2 "
            "found)") in decision.verdict_reason
    assert decision.change is None or not decision.change.rollback


def test_a_coupled_target_on_an_hpa_replaced_since_is_not_rolled_back() -> None:
    # A cut written whole (requests 1000m, target 70% on HPA "api"); the HPA is now "api-v2", at 70% too.
    state = resize_pending(cut=True)
    assert state.last_change is not None
    state = TuningState(last_change=state.last_change.model_copy(
        update={"coupled_target": "HorizontalPodAutoscaler/api"}))
    observations = after_change(latency=0.9, live=b.live(containers=tuple(SMALL_PODS),
                                                         hpa=b.hpa(name="api-v2", cpu_target_percent=70)))
    decision = decide_with(state, observations)
    assert decision.verdict is Verdict.INCONCLUSIVE, decision.verdict_reason
    assert "but coupled hpa.cpuTarget's object is gone (HorizontalPodAutoscaler/api written" in \
        decision.verdict_reason
    assert decision.change is None or not decision.change.rollback
    same = decide_with(state, after_change(latency=0.9, live=b.live(containers=tuple(SMALL_PODS),
                                                                    hpa=b.hpa(cpu_target_percent=70))))
    assert same.verdict is Verdict.ROLLED_BACK and same.change is not None
    assert same.change.coupled_target == "HorizontalPodAutoscaler/api"


def test_a_gone_object_is_named_before_an_edit_found_back() -> None:
    # Requests back at 1500m and the HPA deleted: what someone else did is the HPA's removal.
    decision = decide_on_resize(cut=True, pods=BIG_PODS, target_percent=None, p95_seconds=0.9)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert "coupled hpa.cpuTarget's object is gone: the change is not in effect" in decision.verdict_reason


def test_a_rollback_cut_short_is_not_finished_with_rollback_off() -> None:
    decision = decide_on_resize(cut=True, pods=SMALL_PODS, target_percent=60, p95_seconds=0.9,
                                guardrails={"rollback": False})
    assert decision.verdict is Verdict.KEPT
    assert decision.change is None or not decision.change.rollback


def test_a_rollback_that_failed_to_write_stays_pending_and_is_retried() -> None:
    state = pending(minutes_ago=16)
    observations = after_change(latency=0.9)
    decision = decide_with(state, observations)
    new_state = compute_next_state(state, decision=decision, observations=observations, now=b.NOW, applied=False)
    assert new_state.last_change is not None and new_state.last_change.verdict is Verdict.PENDING
    assert decide_with(new_state, observations, now=b.NOW + b.minutes(1)).verdict is Verdict.ROLLED_BACK


def test_expired_bars_are_dropped() -> None:
    state = TuningState(barred=[BarredMove(setting=Setting.POOL_SIZE, to_value=None, until=b.NOW - b.minutes(1))])
    decision = decide_with(state)
    assert compute_next_state(state, decision=decision, observations=b.observations(), now=b.NOW,
                              applied=False).barred == []


def test_an_emergency_before_the_verdict_makes_the_pending_change_inconclusive() -> None:
    state = RAISE_PENDING
    observations = b.observations(**EMERGENCY)
    decision = decide_with(state, observations)
    new_state = compute_next_state(state, decision=decision, observations=observations, now=b.NOW, applied=True)
    assert new_state.history[-1].verdict is Verdict.INCONCLUSIVE


def test_history_keeps_the_newest_twenty_dropping_the_oldest() -> None:
    def judged(minutes_ago: float) -> ChangeRecord:
        record = pending(minutes_ago=minutes_ago, verdict=Verdict.KEPT, verdict_minutes_ago=minutes_ago - 20)
        assert record.last_change is not None
        return record.last_change

    older = [judged(2000 - 60 * index) for index in range(HISTORY_LIMIT)]
    last = judged(60)
    state = TuningState(last_change=last, history=older)
    observations = b.observations(**NEEDS_CHANGE)
    decision = decide_with(state, observations)
    assert decision.change is not None
    new_state = compute_next_state(state, decision=decision, observations=observations, now=b.NOW, applied=True)
    assert new_state.history == [*older[1:], last]


# --- no move toward less capacity while short of it ---------------------------------------------------


def test_a_slower_scale_up_row_waits_while_the_slo_is_breached() -> None:
    # Kubernetes' default scale-up (+4 pods or +100% per 15 s) is faster than the guide's Moderate row.
    # With the SLO met the row is written; with p95 at 600 ms against 500 ms (short of capacity, not yet an
    # emergency) it is not, and the slower scale-down row (which keeps capacity) goes first instead.
    default_behaviour = b.live(hpa=b.hpa(scale_up=None, scale_down=None))
    met = decide_with(b.EMPTY_STATE, b.observations(latency_p95_seconds=b.series(0.35), live=default_behaviour))
    breached = decide_with(b.EMPTY_STATE, b.observations(latency_p95_seconds=b.series(0.6), live=default_behaviour))
    assert met.change is not None and met.change.edit.setting is Setting.HPA_SCALE_UP
    assert breached.change is not None and breached.change.edit.setting is Setting.HPA_SCALE_DOWN


def test_one_slow_sample_after_a_gap_is_not_a_shortage() -> None:
    # The last five minutes hold only the newest sample (slow); the five before it are missing. That does not
    # cover the span, so it is no shortage and the Moderate scale-up row is written as with the SLO met.
    end = b.NOW.timestamp()
    kept = b.SAMPLES - 6
    stamps = [end - b.STEP_SECONDS * (b.SAMPLES - 1 - i) for i in range(kept)] + [end]
    gap = Series(tuple(stamps), tuple([0.35] * kept + [1.2]))
    default_behaviour = b.live(hpa=b.hpa(scale_up=None, scale_down=None))
    decision = decide_with(b.EMPTY_STATE, b.observations(latency_p95_seconds=gap, live=default_behaviour))
    assert decision.change is not None and decision.change.edit.setting is Setting.HPA_SCALE_UP


def _memory_raise_at_the_busy_hour(rate: float = 81.0) -> Observations:
    """A memory-bound pod at ``rate`` (81% of the week's peak by default), the HPA above its floor."""
    return b.observations(
        memory_working_set_bytes_per_pod=b.series(950 * b.MI), request_rate_per_second=b.series(rate),
        replicas=b.series(4), cpu_usage_millicores_per_pod=b.series(600), peak_request_rate_per_second=100.0,
        live=b.live(hpa=b.hpa(current_replicas=4, desired_replicas=4)),
    )


def _memory_cut_with_p95(p95_seconds: float, at: datetime) -> Observations:
    """Over-provisioned memory (300Mi of 1Gi) with p95 as given, the HPA above its floor."""
    return b.observations(
        at=at, memory_working_set_bytes_per_pod=b.series(300 * b.MI, at=at),
        latency_p95_seconds=b.series(p95_seconds, at=at), cpu_usage_millicores_per_pod=b.series(600, at=at),
        request_rate_per_second=b.series(100, at=at), replicas=b.series(4, at=at),
        peak_memory_working_set_bytes_per_pod=300 * b.MI,
        live=b.live(hpa=b.hpa(current_replicas=4, desired_replicas=4)),
    )


def test_a_cut_waits_for_off_peak_past_the_day_a_raise_waits_at_most() -> None:
    # p95 at 450 ms, near the 500 ms SLO: a rollout now would push it over.
    first = decide(b.profile(), _memory_cut_with_p95(0.45, b.NOW), b.EMPTY_STATE, b.NOW)
    assert first.waits_for_off_peak and first.change is None
    assert "a cut waits for off-peak (p95 450ms" in first.reason
    state = compute_next_state(b.EMPTY_STATE, decision=first, observations=_memory_cut_with_p95(0.45, b.NOW),
                               now=b.NOW, applied=False)
    week_later = b.NOW + timedelta(days=7)
    still = decide(b.profile(), _memory_cut_with_p95(0.45, week_later), state, week_later)
    assert still.waits_for_off_peak and still.change is None
    # With room under the SLO it goes.
    cut = decide(b.profile(), _memory_cut_with_p95(0.35, week_later), state, week_later)
    assert cut.change is not None and cut.change.edit.setting is Setting.RESOURCES, cut.reason


def test_the_state_keeps_when_a_wait_for_off_peak_began_until_the_busy_hour_is_over() -> None:
    observations = _memory_raise_at_the_busy_hour()
    first = decide(b.profile(), observations, b.EMPTY_STATE, b.NOW)
    assert first.waits_for_off_peak and first.change is None
    state = compute_next_state(b.EMPTY_STATE, decision=first, observations=observations, now=b.NOW, applied=False)
    assert state.off_peak_wait_since == b.NOW
    later = b.NOW + timedelta(hours=5)
    still = decide(b.profile(), observations, state, later)
    assert still.waits_for_off_peak and still.change is None
    assert compute_next_state(state, decision=still, observations=observations, now=later,
                              applied=False).off_peak_wait_since == b.NOW  # from when it began, not now
    # A day of the busy hour: no quieter hour to wait for, the change goes ahead. Not written this time (held
    # elsewhere, say), the state still keeps when the wait began, so the next evaluation does not wait again.
    day_later = b.NOW + timedelta(hours=24, minutes=1)
    over = decide(b.profile(), observations, state, day_later)
    assert over.change is not None and over.change.edit.setting is Setting.RESOURCES
    kept = compute_next_state(state, decision=over, observations=observations, now=day_later, applied=False)
    assert kept.off_peak_wait_since == b.NOW
    next_minute = decide(b.profile(), observations, kept, day_later + timedelta(minutes=1))
    assert next_minute.change is not None and next_minute.change.edit.setting is Setting.RESOURCES
    # Off-peak: nothing waits any more, and the state forgets the wait.
    quiet = _memory_raise_at_the_busy_hour(rate=40.0)
    calm = decide(b.profile(), quiet, kept, day_later)
    assert not calm.waits_for_off_peak
    assert compute_next_state(kept, decision=calm, observations=quiet, now=day_later,
                              applied=False).off_peak_wait_since is None


def test_a_moment_at_max_replicas_does_not_start_a_wait_for_off_peak_again() -> None:
    observations = _memory_raise_at_the_busy_hour()
    first = decide(b.profile(), observations, b.EMPTY_STATE, b.NOW)
    state = compute_next_state(b.EMPTY_STATE, decision=first, observations=observations, now=b.NOW, applied=False)
    assert state.off_peak_wait_since == b.NOW
    # One evaluation with the HPA at maxReplicas holds the raise for that reason, and the busy hour goes on.
    later = b.NOW + timedelta(hours=5)
    at_max = replace(observations, live=b.live(hpa=b.hpa(current_replicas=10, desired_replicas=10)))
    held = decide(b.profile(), at_max, state, later)
    assert held.change is None and "maxReplicas" in held.reason
    state = compute_next_state(state, decision=held, observations=at_max, now=later, applied=False)
    assert state.off_peak_wait_since == b.NOW
    day_later = b.NOW + timedelta(hours=24, minutes=1)
    over = decide(b.profile(), observations, state, day_later)
    assert over.change is not None and over.change.edit.setting is Setting.RESOURCES, over.reason


def test_the_baseline_of_a_change_starts_no_earlier_than_the_last_write() -> None:
    # A rollback 10 minutes ago (cooldown just over) undid a setting that had p95 at 0.9 s before it.
    state = pending(minutes_ago=25, verdict=Verdict.ROLLED_BACK, verdict_minutes_ago=10)
    p95 = [0.35] * (b.SAMPLES - 16) + [0.9] * 5 + [0.35] * 11
    observations = b.observations(latency_p95_seconds=b.series(p95), **NEEDS_CHANGE)
    decision = decide_with(state, observations)
    assert decision.change is not None and decision.baseline is not None, decision.reason
    assert decision.baseline.p95_latency_seconds == pytest.approx(0.35)


@pytest.mark.parametrize(("rate_window_seconds", "still_before_minutes"), [(120.0, 2), (60.0, 1)])
def test_the_baseline_of_a_change_leaves_out_samples_whose_rate_window_reaches_back_past_the_last_write(
    rate_window_seconds: float, still_before_minutes: int
) -> None:
    # A rollback 10 minutes ago undid a setting under which p95 was 0.9 s. The samples read within one rate
    # window of that write still average it (two at the reader's 2-minute window, one at 1 minute): they
    # are not the "before" of the next change.
    state = pending(minutes_ago=25, verdict=Verdict.ROLLED_BACK, verdict_minutes_ago=10)
    p95 = [0.9] * (b.SAMPLES - 11 + still_before_minutes) + [0.35] * (11 - still_before_minutes)
    observations = replace(b.observations(latency_p95_seconds=b.series(p95), **NEEDS_CHANGE),
                           rate_window_seconds=rate_window_seconds)
    decision = decide_with(state, observations)
    assert decision.change is not None and decision.baseline is not None, decision.reason
    assert decision.baseline.p95_latency_seconds == pytest.approx(0.35)


def test_a_baseline_with_no_sample_a_rate_window_after_the_last_write_is_unknown_not_the_last_configuration() -> None:
    # A minute after a write (a rollback, say, under which p95 was 0.9 s): every sample since still averages
    # the configuration before it, which would make a worse "before" that hides the next change's regression.
    p95 = [0.35] * (b.SAMPLES - 2) + [0.9, 0.8]
    observations = b.observations(latency_p95_seconds=b.series(p95))
    baseline = compute_baseline(observations, span_seconds=900, not_before=b.NOW - b.minutes(1))
    assert (baseline.p95_latency_seconds, baseline.error_ratio, baseline.request_rate_per_second) == (None, None, None)
    # Two minutes after it, the sample now has a rate window wholly after the write.
    later = compute_baseline(observations, span_seconds=900, not_before=b.NOW - b.minutes(2))
    assert later.p95_latency_seconds == pytest.approx(0.8)


def test_a_verify_for_shorter_than_three_rate_windows_is_judged_once_its_samples_lie_after_the_change() -> None:
    # verifyFor 1m: the after-span starts 2 minutes (a rate window) after the change and lasts the 40s left
    # of verifyFor after its settling third, so the verdict is due at 2m40s, not at 1m, when no sample would
    # lie wholly after the change and every change would be kept.
    errors = b.series([0.001] * (b.SAMPLES - 2) + [0.1, 0.1])
    observations = b.observations(error_ratio=errors, live=b.live(hpa=b.hpa(cpu_target_percent=70)))
    early = decide_with(pending(minutes_ago=2), observations, guardrails={"verifyFor": "1m"})
    assert early.verdict is None, early.verdict_reason
    judged = decide_with(pending(minutes_ago=3), observations, guardrails={"verifyFor": "1m"})
    assert judged.verdict is Verdict.ROLLED_BACK, judged.verdict_reason
    assert "error ratio 0.10% -> 10.00%" in judged.verdict_reason


def test_a_verdict_moved_later_by_the_rate_window_counts_its_lateness_from_when_it_fell_due() -> None:
    # verifyFor 1m falls due at 2m40s; a verdict is late only window + interval (31 minutes) after that. Judged
    # 33m10s after the change it is 30m30s past due, not late: rolled back, not kept as stale.
    errors = b.series([0.001] * (b.SAMPLES - 2) + [0.1, 0.1])
    observations = b.observations(error_ratio=errors, live=b.live(hpa=b.hpa(cpu_target_percent=70)))
    judged = decide_with(pending(minutes_ago=33 + 10 / 60), observations, guardrails={"verifyFor": "1m"})
    assert judged.verdict is Verdict.ROLLED_BACK, judged.verdict_reason


def _pool_shrink_pending(*, minutes_ago: float) -> tuple[PerformanceProfileSpec, TuningState]:
    """A pool shrink 30+20 -> 20+10 made ``minutes_ago``, under a profile whose budget is 100 server
    connections (30+20 on 3 pooler replicas would be 150)."""
    profile = b.profile(pool={"maxServerConnections": 100, "size": {"min": 5, "max": 100}})
    return profile, TuningState(last_change=ChangeRecord(
        at=b.NOW - b.minutes(minutes_ago), target="ConfigMap/pgbouncer",
        setting=Setting.POOL_SIZE, from_value=PoolSize(default_pool_size=30, reserve_pool_size=20),
                  to_value=PoolSize(default_pool_size=20, reserve_pool_size=10),
        baseline=Baseline(p95_latency_seconds=0.35, error_ratio=0.001, request_rate_per_second=100)))


def test_a_pool_rollback_that_would_break_the_server_connection_budget_is_not_written() -> None:
    # A shrink 30+20 -> 20+10 regressed while the pooler scaled out from 1 to 3 replicas: restoring 30+20 on
    # 3 replicas is 150 server connections against a budget of 100.
    profile, state = _pool_shrink_pending(minutes_ago=16)

    def regressed(pooler_replicas: int) -> Observations:
        return b.observations(latency_p95_seconds=b.series(0.9), live=b.live(
            pool=PoolLive(default_pool_size=20, reserve_pool_size=10, pooler_replicas=pooler_replicas)))

    decision = decide(profile, regressed(3), state, b.NOW)
    assert decision.verdict is Verdict.INCONCLUSIVE and "maxServerConnections 100" in decision.verdict_reason
    assert decision.change is None or not decision.change.rollback
    # On the one replica the change was made with, the same regression is rolled back.
    fits = decide(profile, regressed(1), state, b.NOW)
    assert fits.verdict is Verdict.ROLLED_BACK and fits.change is not None and fits.change.rollback


@pytest.mark.parametrize(("p95_before", "emergency", "verdict"), [
    (0.35, False, Verdict.ROLLED_BACK),  # grown with p95 within the SLO: the database may be what it slowed
    (0.6, False, Verdict.INCONCLUSIVE),  # grown in a breach: the latency is the shortage's, which it answered
    (0.35, True, Verdict.INCONCLUSIVE),  # an emergency's grow
])
def test_a_pool_grow_followed_by_a_breach_is_rolled_back_unless_it_answered_a_shortage(
    p95_before: float, emergency: bool, verdict: Verdict
) -> None:
    # DESIGN rolls a regression back; undoing a move toward capacity while p95 is above the SLO waits only for
    # a move made in a shortage. More server connections are more load on the database.
    state = TuningState(last_change=ChangeRecord(
        at=b.NOW - b.minutes(16), target="ConfigMap/pgbouncer", setting=Setting.POOL_SIZE,
        from_value=PoolSize(default_pool_size=20, reserve_pool_size=10),
        to_value=PoolSize(default_pool_size=30, reserve_pool_size=20), emergency=emergency,
        baseline=Baseline(p95_latency_seconds=p95_before, error_ratio=0.001, request_rate_per_second=100)))
    observations = b.observations(latency_p95_seconds=b.series(0.9), live=b.live(
        pool=PoolLive(default_pool_size=30, reserve_pool_size=20, pooler_replicas=1)))
    decision = decide(b.profile(), observations, state, b.NOW)
    assert decision.verdict is verdict, decision.verdict_reason
    assert (decision.change is not None and decision.change.rollback) is (verdict is Verdict.ROLLED_BACK)


def test_a_held_move_toward_capacity_keeps_a_lower_rules_move_away_from_it_from_going_first() -> None:
    # OOMKilled, memory-bound pods whose raise waits for a rollout in progress; objective Cost would also
    # pick a slower scale-up row. Written first, that row's verification would hold the raise for verifyFor.
    observations = b.observations(memory_working_set_bytes_per_pod=b.series(950 * b.MI),
                                  live=b.live(rollout_in_progress=True, oom_kills_in_window=3))
    decision = decide(b.profile(objective="Cost"), observations, b.EMPTY_STATE, b.NOW)
    assert decision.change is None, decision.reason
    assert "waits for the move toward capacity held above it" in decision.reason
    # Without the memory raise to wait for, the row goes.
    calm = b.observations(live=b.live(rollout_in_progress=True))
    row = decide(b.profile(objective="Cost"), calm, b.EMPTY_STATE, b.NOW).change
    assert row is not None and not guardrails.is_toward_capacity(row), row


def test_a_restart_after_a_write_recorded_before_it_verifies_the_change_instead_of_stepping_again() -> None:
    # The state is saved before the write (state.py's contract); the operator restarts right after writing.
    # The next evaluation finds the change Pending and in effect: verified, not taken a second step further.
    observations = b.observations(latency_p95_seconds=b.series(0.6), cpu_usage_millicores_per_pod=b.series(500))
    first = decide(b.profile(), observations, b.EMPTY_STATE, b.NOW)
    assert first.change is not None and first.change.edit == Edit(
        setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60)
    saved = compute_next_state(b.EMPTY_STATE, decision=first, observations=observations, now=b.NOW, applied=True)
    later = b.NOW + b.minutes(1)
    written = b.observations(at=later, latency_p95_seconds=b.series(0.6, at=later),
                             cpu_usage_millicores_per_pod=b.series(500, at=later),
                             live=b.live(hpa=b.hpa(cpu_target_percent=60)))
    resumed = decide(b.profile(), written, saved, later)
    assert resumed.change is None and resumed.verdict is None and "verifying" in resumed.reason
    # Had the write not happened (a crash before it), the same status finds it Reverted, its move barred.
    unwritten = replace(written, live=b.live(hpa=b.hpa(cpu_target_percent=70)))
    found = decide(b.profile(), unwritten, saved, later)
    assert found.verdict is Verdict.REVERTED and found.barred_until is not None
    assert found.change is None or found.change.edit.to_value != 60


def test_an_slo_emergency_during_a_cuts_verification_rolls_the_cut_back_first() -> None:
    # A CPU cut (1500m -> 1000m, target 60% -> 70%) 8 minutes into verifyFor; p95 jumps to 1.2 s (2.4 x SLO).
    state = resize_pending(cut=True, minutes_ago=8)
    observations = after_change(latency=1.2, live=b.live(containers=tuple(SMALL_PODS),
                                                         hpa=b.hpa(cpu_target_percent=70)))
    decision = decide_with(state, observations)
    assert decision.verdict is Verdict.ROLLED_BACK, decision.reason
    assert decision.change is not None and decision.change.rollback
    assert decision.change.edit.to_value == BIG_PODS
    assert decision.change.coupled == Edit(setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60)
    after = compute_next_state(state, decision=decision, observations=observations, now=b.NOW, applied=True)
    assert after.last_change is not None and after.last_change.verdict is Verdict.ROLLED_BACK
    assert [move.setting for move in after.barred] == [Setting.RESOURCES]


def test_an_slo_emergency_during_a_raises_verification_acts_on_its_own() -> None:
    # A raise took no capacity away: undoing it is no answer to the emergency, the emergency's move is.
    state = resize_pending(cut=False, minutes_ago=8)
    observations = after_change(latency=1.2, live=b.live(containers=tuple(BIG_PODS),
                                                         hpa=b.hpa(cpu_target_percent=60)))
    decision = decide_with(state, observations)
    assert decision.change is not None and decision.change.emergency and not decision.change.rollback


def test_an_emergency_does_not_undo_a_pool_shrink_when_that_breaks_the_server_budget() -> None:
    # A shrink 30+20 -> 20+10 8 minutes ago; the pooler scaled out to 3 replicas since: 150 connections > 100.
    profile, state = _pool_shrink_pending(minutes_ago=8)
    observations = b.observations(latency_p95_seconds=b.series(1.2), live=b.live(
        pool=PoolLive(default_pool_size=20, reserve_pool_size=10, pooler_replicas=3)))
    decision = decide(profile, observations, state, b.NOW)
    assert decision.change is not None and not decision.change.rollback and decision.change.emergency


def test_an_emergency_does_not_undo_a_memory_cut_whose_rollout_adds_no_cpu() -> None:
    # At maxReplicas a rollout takes out pods that cannot be replaced; undoing a memory cut gives none more CPU.
    cut = [b.container(memory_request_bytes=768 * b.MI, memory_limit_bytes=1536 * b.MI)]
    state = TuningState(last_change=ChangeRecord(
        at=b.NOW - b.minutes(8), target="Deployment/api",
        setting=Setting.RESOURCES, from_value=[b.container()], to_value=cut,
        baseline=Baseline(p95_latency_seconds=0.35, error_ratio=0.001, request_rate_per_second=100)))
    observations = b.observations(latency_p95_seconds=b.series(1.2), replicas=b.series(10), live=b.live(
        containers=tuple(cut), hpa=b.hpa(current_replicas=10)))
    decision = decide(b.profile(hpa={"maxReplicasCeiling": 20}), observations, state, b.NOW)
    assert decision.change is not None and not decision.change.rollback
    assert decision.change.edit.setting is Setting.HPA_MAX_REPLICAS


def test_with_rollback_off_a_change_cut_short_is_left_to_its_verdict() -> None:
    decision = decide_on_resize(cut=True, pods=BIG_PODS, target_percent=70, p95_seconds=0.3, minutes_ago=5,
                                guardrails={"rollback": False})
    assert decision.verdict is None and (decision.change is None or not decision.change.rollback)


def test_a_rollback_cut_short_during_verify_for_is_finished_at_once() -> None:
    # An emergency's undo of a cut (1500m -> 1000m, 60% -> 70%) wrote the target back to 60% and stopped.
    decision = decide_on_resize(cut=True, pods=SMALL_PODS, target_percent=60, p95_seconds=1.2, minutes_ago=8)
    assert decision.verdict is Verdict.ROLLED_BACK
    assert decision.change is not None and decision.change.rollback and decision.change.edit.to_value == BIG_PODS


ON_DELETE = "the StatefulSet's updateStrategy is OnDelete: its pods take a new template only once deleted"


def test_an_on_delete_statefulset_gets_no_resources_change_and_the_next_rule_goes() -> None:
    # OOMKilled, memory-bound pods: the raise would change the template of a StatefulSet whose updateStrategy
    # is OnDelete, which no pod takes until someone deletes it. It is not made, and says why.
    oom = {"memory_working_set_bytes_per_pod": b.series(950 * b.MI)}
    on_delete = b.observations(**oom, live=b.live(template_held_by=ON_DELETE, oom_kills_in_window=3))
    decision = decide(b.profile(), on_delete, b.EMPTY_STATE, b.NOW)
    assert decision.change is None, decision.reason
    assert f"resources change not made: {ON_DELETE} (perfpilot neither deletes pods" in decision.reason
    # Nor is it held (it would wait for good): the next rule's move goes, objective Cost's slower scale-up row.
    cost = decide(b.profile(objective="Cost"), on_delete, b.EMPTY_STATE, b.NOW)
    assert cost.change is not None and cost.change.edit.setting is Setting.HPA_SCALE_UP, cost.reason
    rolling = b.observations(**oom, live=b.live(oom_kills_in_window=3))
    raised = decide(b.profile(objective="Cost"), rolling, b.EMPTY_STATE, b.NOW).change
    assert raised is not None and raised.edit.setting is Setting.RESOURCES, raised


def test_recommend_mode_shows_the_resources_change_an_on_delete_statefulset_needs_and_says_who_rolls_it() -> None:
    # Whoever deletes the pods by hand is the one to act on it: Recommend names it, with why Auto would not.
    oom = {"memory_working_set_bytes_per_pod": b.series(950 * b.MI)}
    on_delete = b.observations(**oom, live=b.live(template_held_by=ON_DELETE, oom_kills_in_window=3))
    decision = decide(b.profile(mode="Recommend"), on_delete, b.EMPTY_STATE, b.NOW)
    assert decision.change is not None and decision.change.edit.setting is Setting.RESOURCES, decision.reason
    assert not decision.apply
    assert f"[{ON_DELETE}; in Auto this change would not be made]" in decision.reason


def test_an_emergency_on_an_on_delete_statefulset_moves_the_hpa_not_the_template() -> None:
    # p95 over twice the SLO with the CPU-bound pods at maxReplicas: the emergency raises their CPU request,
    # which on an OnDelete StatefulSet would reach no pod; its next move toward capacity goes instead.
    hot = {"latency_p95_seconds": b.series(1.2), "cpu_usage_millicores_per_pod": b.series(950),
           "cpu_throttled_ratio": b.series(0.3), "replicas": b.series(10)}
    at_max = b.hpa(current_replicas=10, desired_replicas=10)
    rolling = decide(b.profile(), b.observations(**hot, live=b.live(hpa=at_max)), b.EMPTY_STATE, b.NOW).change
    assert rolling is not None and rolling.emergency and rolling.edit.setting is Setting.RESOURCES, rolling
    on_delete = decide(b.profile(), b.observations(**hot, live=b.live(hpa=at_max, template_held_by=ON_DELETE)),
                       b.EMPTY_STATE, b.NOW).change
    assert on_delete is not None and on_delete.emergency, on_delete
    assert on_delete.edit.setting is Setting.HPA_SCALE_UP, on_delete


def test_a_held_move_toward_capacity_lets_a_slower_scale_down_go() -> None:
    # The HPA has Kubernetes' default scale-down (100% per 15 s): the Moderate row is slower, toward capacity.
    live = {"rollout_in_progress": True, "hpa": b.hpa(scale_down=None)}
    observations = b.observations(memory_working_set_bytes_per_pod=b.series(950 * b.MI),
                                  live=b.live(oom_kills_in_window=3, **live))
    decision = decide(b.profile(), observations, b.EMPTY_STATE, b.NOW)
    assert decision.change is not None and decision.change.edit.setting is Setting.HPA_SCALE_DOWN, decision.reason


def test_a_resources_change_does_not_wait_while_the_pods_total_nears_their_limit_and_no_container_is_read() -> None:
    # Two containers whose own series are missing: the pod's total near the sum of their limits (2 + 2 GiB)
    # means one of them is near its own, and a rollout replaces those pods with fresh ones.
    containers = (b.container("app"), b.container("proxy"))
    raised = [containers[0].model_copy(update={"memory_request_bytes": 3 * b.GI // 2}), containers[1]]
    change = ProposedChange(target="Deployment/api", reason="memory-bound", table_row="Memory-bound",
                            edit=Edit(setting=Setting.RESOURCES, from_value=list(containers), to_value=raised))

    def with_pod_working_set(fraction_of_limits: float) -> Observations:
        return b.observations(live=b.live(containers=containers),
                              memory_working_set_bytes_per_pod=b.series(fraction_of_limits * 4 * b.GI))

    assert resources_change_may_wait(change, with_pod_working_set(0.95), thresholds=DEFAULT_THRESHOLDS) is False
    assert resources_change_may_wait(change, with_pod_working_set(0.5), thresholds=DEFAULT_THRESHOLDS) is True
