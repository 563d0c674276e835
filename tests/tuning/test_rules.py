"""Each table row chosen by decide() in the situation DESIGN gives it, with bounds, steps and coupling."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
import tuning_builders as b

from perfpilot.api.status import (
    ChangeRecord,
    ContainerResources,
    Edit,
    PoolSize,
    ScalingPolicy,
    ScalingRules,
    Setting,
    TuningState,
    Verdict,
)
from perfpilot.tuning.classify import classify_load, compute_classification_detail
from perfpilot.tuning.decision import Decision, ProposedChange
from perfpilot.tuning.engine import check_rollout_at_busy_hour, decide
from perfpilot.tuning.observations import Observations, Series, Signal, Unknown
from perfpilot.tuning.rules import RuleContext
from perfpilot.tuning.rules.behaviour import is_slo_breached_while_scaling_up
from perfpilot.tuning.tables import POOL_TIERS, SCALE_DOWN_ROWS, SCALE_UP_ROWS
from perfpilot.tuning.thresholds import DEFAULT_THRESHOLDS

STEADY_LOW_LATENCY = {"latency_p95_seconds": b.series(0.2)}  # under 60% of the SLO: raising targets allowed


def run(observations: Observations | None = None, **profile_overrides: Any) -> Decision:
    return decide(b.profile(**profile_overrides), observations or b.observations(), b.EMPTY_STATE, b.NOW)


def change_of(decision: Decision) -> ProposedChange:
    assert decision.change is not None, decision.reason
    return decision.change


def bursty_rate() -> Any:
    return b.series([60.0 if i % 2 else 140.0 for i in range(b.SAMPLES)])


# --- HPA CPU target table ---------------------------------------------------------------------------


@pytest.mark.parametrize(("objective", "live_target", "rate", "expected", "row"), [
    ("Balanced", 70, "steady", None, None),                       # Steady row 70 = live
    ("Balanced", 70, "bursty", 60, "Bursty, unpredictable"),
    ("Reliability", 60, "steady", 50, "Critical workload"),
    ("Cost", 70, "steady", 80, "Cost-sensitive"),
    ("Balanced", 60, "steady", 70, "Steady, predictable"),
])
def test_cpu_target_follows_the_table_row_for_objective_and_load(
    objective: str, live_target: int, rate: str, expected: int | None, row: str | None
) -> None:
    observations = b.observations(
        request_rate_per_second=bursty_rate() if rate == "bursty" else b.series(100),
        live=b.live(hpa=b.hpa(cpu_target_percent=live_target)),
        **STEADY_LOW_LATENCY,
    )
    decision = run(observations, objective=objective, hpa={"scaleDown": "Moderate"})
    if expected is None:
        assert decision.change is None, decision.reason
        return
    change = change_of(decision)
    assert change.edit.setting is Setting.HPA_CPU_TARGET
    assert (change.edit.from_value, change.edit.to_value) == (live_target, expected)
    assert change.target == "HorizontalPodAutoscaler/api"
    assert f"'{row}'" in change.reason


def test_cpu_target_moves_at_most_max_target_step_points_and_says_so() -> None:
    observations = b.observations(live=b.live(hpa=b.hpa(cpu_target_percent=80)), request_rate_per_second=bursty_rate())
    change = change_of(run(observations, guardrails={"maxTargetStep": 5}, hpa={"scaleDown": "Moderate"}))
    assert (change.edit.from_value, change.edit.to_value) == (80, 75)
    assert "step limited to 5 points" in change.reason


def test_cpu_target_table_value_is_clamped_to_the_profile_bounds() -> None:
    observations = b.observations(live=b.live(hpa=b.hpa(cpu_target_percent=70)), **STEADY_LOW_LATENCY)
    change = change_of(run(observations, objective="Cost", hpa={"cpuTarget": {"min": 50, "max": 75}}))
    assert change.edit.to_value == 75
    assert "clamped" in change.reason


def test_raising_a_cpu_target_needs_p95_under_sixty_percent_of_the_slo_all_window() -> None:
    latency = b.series([0.2] * (b.SAMPLES - 1) + [0.31])  # one sample at 62% of the SLO
    observations = b.observations(latency_p95_seconds=latency)
    decision = run(observations, objective="Cost", hpa={"scaleUp": "Moderate", "scaleDown": "Moderate"})
    assert decision.change is None
    assert "raising needs p95 under 300ms" in decision.reason


def test_latency_feedback_lowers_the_cpu_target_when_the_slo_is_breached_with_cpu_below_target() -> None:
    observations = b.observations(latency_p95_seconds=b.series(0.7), cpu_usage_millicores_per_pod=b.series(500))
    change = change_of(run(observations))
    assert (change.edit.setting, change.edit.from_value, change.edit.to_value) == (Setting.HPA_CPU_TARGET, 70, 60)
    assert change.table_row == "latency feedback"
    assert change.emergency is False


def test_latency_feedback_stops_at_cpu_target_min() -> None:
    observations = b.observations(
        latency_p95_seconds=b.series(0.7), cpu_usage_millicores_per_pod=b.series(400),
        live=b.live(hpa=b.hpa(cpu_target_percent=50)),
    )
    decision = run(observations)
    assert decision.change is None or decision.change.edit.setting is not Setting.HPA_CPU_TARGET
    assert "at cpuTarget.min" in decision.reason


def test_breached_slo_with_cpu_above_target_is_not_latency_feedback() -> None:
    observations = b.observations(latency_p95_seconds=b.series(0.7), cpu_usage_millicores_per_pod=b.series(800))
    decision = run(observations)
    assert decision.change is None or decision.change.table_row != "latency feedback"


def test_latency_feedback_is_skipped_not_crashed_when_no_sample_is_recent() -> None:
    # A reader step of a few minutes keeps a series known whose newest sample is older than the
    # 5-minute span latency feedback looks at.
    old = b.NOW - b.minutes(5.5)
    observations = b.observations(
        latency_p95_seconds=b.series(0.7, at=old), cpu_usage_millicores_per_pod=b.series(500, at=old),
    )
    decision = run(observations)
    assert decision.change is None or decision.change.edit.setting is not Setting.HPA_CPU_TARGET
    assert "HPA CPU target: no p95 or CPU sample in the last 5 minutes: no latency feedback" in decision.reason


def test_a_cpu_target_is_not_raised_on_a_p95_series_without_a_recent_sample() -> None:
    # Low p95 all window but nothing in the last 5 minutes (a coarse reader step): a raise takes capacity away.
    old = b.NOW - b.minutes(9)
    observations = b.observations(
        latency_p95_seconds=b.series(0.2, at=old), cpu_usage_millicores_per_pod=b.series(500, at=old),
        live=b.live(hpa=b.hpa(cpu_target_percent=60)),
    )
    decision = run(observations)
    assert decision.change is None or decision.change.edit.setting is not Setting.HPA_CPU_TARGET
    assert "raising needs a p95 sample in the last 5 minutes" in decision.reason


# --- HPA memory target table -----------------------------------------------------------------------


@pytest.mark.parametrize(("working_set", "live_target", "expected", "row"), [
    ("stable", 70, 80, "Stable usage"),
    ("growing", 80, 70, "Growing over time (leak?)"),
    ("variable", 80, 75, "Highly variable"),
])
def test_memory_target_follows_the_memory_row(working_set: str, live_target: int, expected: int, row: str) -> None:
    shapes = {
        "stable": b.series(500 * b.MI),
        "growing": b.series(b.ramp(400 * b.MI, 500 * b.MI)),
        "variable": b.series([300 * b.MI if i % 2 else 600 * b.MI for i in range(b.SAMPLES)]),
    }
    observations = b.observations(
        memory_working_set_bytes_per_pod=shapes[working_set],
        live=b.live(hpa=b.hpa(memory_target_percent=live_target)),
    )
    change = change_of(run(observations))
    assert change.edit.setting is Setting.HPA_MEMORY_TARGET
    assert (change.edit.from_value, change.edit.to_value) == (live_target, expected)
    assert f"'{row}'" in change.reason


# --- behaviour tables ----------------------------------------------------------------------------------


def rules_of(change: ProposedChange) -> tuple[int | None, int, int]:
    rules = change.edit.to_value
    assert isinstance(rules, ScalingRules)
    policy = rules.policies[0]
    return rules.stabilization_window_seconds, policy.value, policy.period_seconds


def test_flash_crowd_picks_aggressive_scale_up() -> None:
    rate = b.series([100.0] * 20 + [250.0] * (b.SAMPLES - 20))  # also bursty: CPU target row 60 already live
    observations = b.observations(request_rate_per_second=rate, live=b.live(hpa=b.hpa(cpu_target_percent=60)))
    change = change_of(run(observations, hpa={"scaleDown": "Moderate"}))
    assert change.edit.setting is Setting.HPA_SCALE_UP
    assert rules_of(change) == (0, 100, 15)


@pytest.mark.parametrize(("peak", "rise", "live_row", "expected_row"), [
    (100.0, 80.0, "Moderate", "Aggressive"),    # at least x5 within 5 minutes this week
    (100.0, 50.0, "Moderate", "Aggressive"),    # at least x2: a flash crowd
    (100.0, 45.0, "Moderate", "Moderate"),      # at least x1.8 only: not enough to enter...
    (100.0, 45.0, "Aggressive", "Aggressive"),  # ...but enough to stay (x1.5)
    (100.0, 30.0, "Aggressive", "Moderate"),    # at least x1.4: the row goes back
    (100.0, 100.0, "Moderate", "Aggressive"),   # from nothing to the peak
])
def test_a_flash_crowd_of_the_peak_window_keeps_aggressive_scale_up_through_a_quiet_window(
    peak: float, rise: float, live_row: str, expected_row: str
) -> None:
    # The window itself is flat (x1.0): only the week's largest rise can call for Aggressive.
    observations = b.observations(
        peak_request_rate_per_second=peak, peak_request_rate_rise_per_second=rise,
        live=b.live(hpa=b.hpa(scale_up=SCALE_UP_ROWS[live_row].to_rules())),
    )
    decision = run(observations, hpa={"scaleDown": "Moderate"})
    if expected_row == live_row:
        assert decision.change is None or decision.change.edit.setting is not Setting.HPA_SCALE_UP, decision.reason
        assert f"scale-up row '{expected_row}'" in decision.reason
    else:
        change = change_of(decision)
        assert change.edit.setting is Setting.HPA_SCALE_UP
        assert change.edit.to_value == SCALE_UP_ROWS[expected_row].to_rules()
    if expected_row == "Aggressive":
        assert "flash crowd in the last 168h" in decision.reason


def test_an_unknown_largest_rise_leaves_the_scale_up_row_to_the_window() -> None:
    observations = b.observations(peak_request_rate_rise_per_second=b.unknown("no series"),
                                  peak_request_rate_per_second=100.0)
    decision = run(observations, hpa={"scaleDown": "Moderate"})
    assert decision.change is None, decision.reason
    assert "scale-up row 'Moderate' (window 0s, +50% per 30s): already in place" in decision.reason


def test_slo_breach_while_scaling_up_picks_aggressive_scale_up() -> None:
    replicas = b.series([4.0] * 15 + [5.0] * (b.SAMPLES - 15))
    latency = b.series([0.35] * 15 + [0.6] + [0.35] * (b.SAMPLES - 16))
    observations = b.observations(replicas=replicas, latency_p95_seconds=latency)
    change = change_of(run(observations, hpa={"scaleDown": "Moderate"}))
    assert change.edit.setting is Setting.HPA_SCALE_UP
    assert rules_of(change) == (0, 100, 15)


def test_cost_objective_with_steady_load_picks_conservative_scale_up() -> None:
    observations = b.observations(live=b.live(hpa=b.hpa(cpu_target_percent=80)))
    change = change_of(run(observations, objective="Cost", hpa={"scaleDown": "Moderate"}))
    assert change.edit.setting is Setting.HPA_SCALE_UP
    assert rules_of(change) == (60, 25, 60)


def test_default_kubernetes_behaviour_becomes_the_moderate_rows() -> None:
    observations = b.observations(live=b.live(hpa=b.hpa(scale_up=None, scale_down=None)))
    change = change_of(run(observations))
    assert change.edit.setting is Setting.HPA_SCALE_UP
    assert change.edit.from_value is None
    assert rules_of(change) == (0, 50, 30)


def test_an_equivalent_live_behaviour_is_not_a_change() -> None:
    # Same as the Moderate row, written with an explicit selectPolicy: Max.
    same = ScalingRules(stabilization_window_seconds=0, select_policy="Max",
                        policies=[ScalingPolicy(type="Percent", value=50, period_seconds=30)])
    observations = b.observations(live=b.live(hpa=b.hpa(scale_up=same)))
    assert run(observations).change is None


@pytest.mark.parametrize(("situation", "objective", "expected"), [
    ("flapping", "Balanced", (600, 5, 120)),
    ("bursty", "Balanced", (600, 5, 120)),
    ("steady", "Cost", (60, 50, 30)),
])
def test_flapping_or_bursty_load_picks_slow_scale_down_and_cost_on_steady_load_picks_fast(
    situation: str, objective: str, expected: tuple[int, int, int]
) -> None:
    replicas = b.series([4.0, 5.0] * 15 + [4.0]) if situation == "flapping" else b.series(4)
    rate = bursty_rate() if situation == "bursty" else b.series(100)
    target = 80 if objective == "Cost" else (60 if situation == "bursty" else 70)
    up = SCALE_UP_ROWS["Conservative" if objective == "Cost" else "Moderate"].to_rules()
    observations = b.observations(
        replicas=replicas, request_rate_per_second=rate,
        live=b.live(hpa=b.hpa(cpu_target_percent=target, scale_up=up)),
    )
    change = change_of(run(observations, objective=objective))
    assert change.edit.setting is Setting.HPA_SCALE_DOWN
    assert rules_of(change) == expected


def test_a_pinned_row_is_written_and_never_replaced_by_the_auto_choice() -> None:
    rate = b.series([100.0] * 20 + [250.0] * (b.SAMPLES - 20))  # a flash crowd would pick Aggressive
    observations = b.observations(request_rate_per_second=rate, live=b.live(hpa=b.hpa(cpu_target_percent=60)))
    change = change_of(run(observations, hpa={"scaleUp": "Conservative"}))
    assert change.edit.setting is Setting.HPA_SCALE_UP
    assert rules_of(change) == (60, 25, 60)
    assert "pinned" in change.reason


# --- resources table and coupling --------------------------------------------------------------------


def resources(change: ProposedChange) -> tuple[list[ContainerResources], list[ContainerResources]]:
    before, after = change.edit.from_value, change.edit.to_value
    assert isinstance(before, list) and isinstance(after, list)
    return before, after


def test_cpu_bound_raises_cpu_request_and_limit_by_half_and_couples_the_cpu_target() -> None:
    change = change_of(run(b.observations(cpu_throttled_ratio=b.series(0.2))))
    assert change.target == "Deployment/api"
    _, after = resources(change)
    assert (after[0].cpu_request_millicores, after[0].cpu_limit_millicores) == (1500, 3000)
    assert after[0].memory_request_bytes == b.GI
    assert change.coupled is not None
    assert (change.coupled.setting, change.coupled.from_value, change.coupled.to_value) == (
        Setting.HPA_CPU_TARGET, 70, 60)  # ideal 47% is limited by maxTargetStep 10
    assert change.coupled_target == "HorizontalPodAutoscaler/api"


def test_coupled_target_keeps_the_replica_count_when_the_step_allows() -> None:
    observations = b.observations(cpu_throttled_ratio=b.series(0.2))
    change = change_of(run(observations, guardrails={"maxStepPercent": 10, "maxTargetStep": 20}))
    _, after = resources(change)
    assert after[0].cpu_request_millicores == 1100
    assert change.coupled is not None
    assert change.coupled.to_value == 64  # 70% x 1000m / 1100m = 63.6: target x request unchanged


def test_a_raise_never_couples_a_higher_cpu_target_when_the_live_one_is_below_its_bounds() -> None:
    # Live 30% is below cpuTarget.min 50%: the bounds would pull the coupled target up, halving the
    # replica count that coupling is there to keep.
    observations = b.observations(cpu_throttled_ratio=b.series(0.3), cpu_usage_millicores_per_pod=b.series(300),
                                  live=b.live(hpa=b.hpa(cpu_target_percent=30)))
    change = change_of(run(observations))
    _, after = resources(change)
    assert after[0].cpu_request_millicores == 1500
    assert change.coupled is None
    assert "CPU target stays: live 30% is outside cpuTarget 50-80%" in change.reason


def test_oom_kills_raise_memory_on_a_pod_without_a_cpu_limit() -> None:
    # The common "no CPU limits" setup has no throttling series; the kills alone call for more memory.
    live = b.live(containers=(b.container(cpu_limit_millicores=None),), oom_kills_in_window=3)
    change = change_of(run(b.observations(cpu_throttled_ratio=b.unknown("no CPU limit"), live=live)))
    _, after = resources(change)
    assert after[0].memory_request_bytes == 1536 * b.MI and after[0].cpu_request_millicores == 1000


def test_memory_bound_raises_memory_only() -> None:
    change = change_of(run(b.observations(live=b.live(oom_kills_in_window=1))))
    _, after = resources(change)
    assert after[0].memory_request_bytes == 1536 * b.MI
    assert after[0].memory_limit_bytes == 3 * b.GI
    assert after[0].cpu_request_millicores == 1000
    assert change.coupled is None


def test_under_provisioned_raises_cpu_and_memory() -> None:
    observations = b.observations(cpu_throttled_ratio=b.series(0.2), live=b.live(oom_kills_in_window=1))
    _, after = resources(change_of(run(observations)))
    assert (after[0].cpu_request_millicores, after[0].memory_request_bytes) == (1500, 1536 * b.MI)


def over_provisioned_observations(
    *, peak_cpu: float | Unknown = 600.0, peak_memory: float | Unknown = 300 * b.MI,
    peak_rise: float | Unknown = 0.0,
) -> Observations:
    """2 pods at 300m of 1000m and 300Mi of 1Gi all window at 100 req/s (6m per request/s); peaks over the
    peak window as given (by default a steady service: the rate never rose)."""
    return replace(b.observations(
        cpu_usage_millicores_per_pod=b.series(300), replicas=b.series(2),
        memory_working_set_bytes_per_pod=b.series(300 * b.MI),
        live=b.live(hpa=b.hpa(current_replicas=2)),
    ), peak_cpu_usage_millicores_total=peak_cpu, peak_memory_working_set_bytes_per_pod=peak_memory,
        peak_request_rate_rise_per_second=peak_rise)


def test_over_provisioned_lowers_by_a_quarter() -> None:
    observations = over_provisioned_observations()
    change = change_of(run(observations))
    _, after = resources(change)
    assert (after[0].cpu_request_millicores, after[0].memory_request_bytes) == (750, 768 * b.MI)
    assert change.coupled is None  # 70 x 1000/750 = 93, but a cut raises the target at most to the row (Steady 70)
    assert "CPU target stays: a cut raises it no higher than the objective's row (70%)" in change.reason


@pytest.mark.parametrize(("p95_peak", "cpu_cut"), [(0.400, True), (0.401, False)])
def test_a_cpu_cut_waits_while_p95_is_within_a_fifth_of_the_slo_and_memory_goes_on(
    p95_peak: float, cpu_cut: bool
) -> None:
    # At minReplicas smaller pods make every request slower: with p95 above 80% of the 500 ms SLO there is no
    # room for that. Memory (300Mi of 1Gi) is cut either way.
    latency = b.series([0.2] * (b.SAMPLES - 1) + [p95_peak])
    change = change_of(run(replace(over_provisioned_observations(), latency_p95_seconds=latency)))
    _, after = resources(change)
    assert (after[0].cpu_request_millicores, after[0].memory_request_bytes) == (750 if cpu_cut else 1000, 768 * b.MI)
    if not cpu_cut:
        assert "CPU stays: p95 401ms in the window > 80% of the SLO" in change.reason


def test_a_cut_raises_a_target_below_its_row_only_up_to_the_row() -> None:
    observations = over_provisioned_observations()
    observations = replace(observations, live=replace(observations.live, hpa=b.hpa(current_replicas=2,
                                                                                    cpu_target_percent=60)))
    change = change_of(run(observations))
    assert change.coupled is not None and change.coupled.to_value == 70  # 60 x 1000/750 = 80 -> Steady row 70


@pytest.mark.parametrize(("usage", "cut"), [(375, True), (376, False)])
def test_a_cpu_cut_keeps_room_for_a_flash_crowd(usage: float, cut: bool) -> None:
    # The cut pod (750m) must hold flash_crowd_multiple (2) x the window's peak per-pod usage: 750 >= 2 x 375.
    observations = replace(over_provisioned_observations(), cpu_usage_millicores_per_pod=b.series(usage))
    decision = run(observations)
    assert decision.change is not None
    _, after = resources(decision.change)
    assert after[0].cpu_request_millicores == (750 if cut else 1000)


def test_memory_bound_with_a_saturated_hpa_takes_the_under_row_in_one_rollout() -> None:
    observations = b.observations(
        cpu_usage_millicores_per_pod=b.series(800), replicas=b.series(10),
        live=b.live(oom_kills_in_window=1, hpa=b.hpa(current_replicas=10, desired_replicas=10)),
    )
    change = change_of(run(observations))
    _, after = resources(change)
    assert (after[0].cpu_request_millicores, after[0].memory_request_bytes) == (1500, 1536 * b.MI)
    assert change.table_row == "Under-provisioned" and "one rollout" in change.reason


@pytest.mark.parametrize(("policy", "cpu_limit"), [("KeepRatio", 3000), ("Guaranteed", 2000),
                                                    ("RequestsOnly", 2000)])
def test_limits_follow_the_limits_policy(policy: str, cpu_limit: int) -> None:
    change = change_of(run(b.observations(cpu_throttled_ratio=b.series(0.2)), resources={"limits": policy}))
    _, after = resources(change)
    assert after[0].cpu_limit_millicores == cpu_limit


def test_guaranteed_sets_limits_to_requests_but_a_raise_never_lowers_a_limit() -> None:
    # Live 1Gi request with a 2Gi limit, working set 1.8Gi: a 1.5Gi limit would OOM-kill every pod.
    raised = change_of(run(b.observations(memory_working_set_bytes_per_pod=b.series(1.8 * b.GI)),
                           resources={"limits": "Guaranteed"}))
    _, after = resources(raised)
    assert (after[0].memory_request_bytes, after[0].memory_limit_bytes) == (1536 * b.MI, 2 * b.GI)
    live = b.live(containers=[b.container(cpu_request_millicores=1000, cpu_limit_millicores=1000)])
    at_limit = change_of(run(b.observations(cpu_throttled_ratio=b.series(0.2), live=live),
                             resources={"limits": "Guaranteed"}))
    _, after = resources(at_limit)
    assert (after[0].cpu_request_millicores, after[0].cpu_limit_millicores) == (1500, 1500)
    # Under-provisioned with the CPU request at cpu.max: memory rises, CPU and its limit stay as they are.
    capped = change_of(run(b.observations(cpu_throttled_ratio=b.series(0.2), live=b.live(oom_kills_in_window=1)),
                           resources={"limits": "Guaranteed", "cpu": {"min": "100m", "max": "1000m"}}))
    _, after = resources(capped)
    assert (after[0].cpu_request_millicores, after[0].cpu_limit_millicores) == (1000, 2000)
    assert after[0].memory_request_bytes == 1536 * b.MI


def test_requests_only_never_raises_a_request_above_its_limit() -> None:
    observations = b.observations(cpu_throttled_ratio=b.series(0.2), live=b.live(containers=(
        b.container(cpu_limit_millicores=1200),)))
    change = change_of(run(observations, resources={"limits": "RequestsOnly"}))
    _, after = resources(change)
    assert after[0].cpu_request_millicores == 1200


def test_requests_stay_within_the_cpu_bounds() -> None:
    change = change_of(run(b.observations(cpu_throttled_ratio=b.series(0.2)), resources={"cpu": {"min": "50m",
                                                                                               "max": "1200m"}}))
    _, after = resources(change)
    assert after[0].cpu_request_millicores == 1200


def test_only_the_selected_containers_are_resized_and_coupling_uses_the_pod_total() -> None:
    containers = (b.container("app"), b.container("sidecar", cpu_request_millicores=200, cpu_limit_millicores=400))
    # The app, the one selected container, is throttled in 20% of its CFS periods.
    observations = replace(b.observations(live=b.live(containers=containers)),
                           cpu_throttled_ratio_by_container={"app": b.series(0.2)},
                           cpu_usage_millicores_by_container={"app": b.series(700)},
                           memory_working_set_bytes_by_container={"app": b.series(600 * b.MI)})
    change = change_of(run(observations, resources={"containers": ["app"]},
                           hpa={"cpuTarget": {"min": 30, "max": 80}}, guardrails={"maxTargetStep": 30}))
    before, after = resources(change)
    assert [c.name for c in before] == [c.name for c in after] == ["app"]
    assert after[0].cpu_request_millicores == 1500
    assert change.coupled is not None
    assert change.coupled.to_value == 49  # 70% x 1200m / 1700m = 49.4 (the pod's total request)


def test_saturated_hpa_raises_max_replicas_up_to_the_ceiling() -> None:
    observations = b.observations(
        latency_p95_seconds=b.series(0.7), cpu_usage_millicores_per_pod=b.series(800), replicas=b.series(10),
        live=b.live(hpa=b.hpa(current_replicas=10, desired_replicas=10)),
    )
    change = change_of(run(observations, hpa={"maxReplicasCeiling": 12}))
    assert (change.edit.setting, change.edit.from_value, change.edit.to_value) == (Setting.HPA_MAX_REPLICAS, 10, 12)


@pytest.mark.parametrize(("cpu_millicores", "saturated"), [(760, False), (780, True)])
def test_an_hpa_at_max_replicas_is_saturated_only_beyond_its_tolerance(cpu_millicores: int, saturated: bool) -> None:
    # 76% of a 70% target is within the HPA's 10% tolerance (77%): it would not add a pod even below maxReplicas.
    observations = b.observations(
        cpu_usage_millicores_per_pod=b.series(cpu_millicores), replicas=b.series(10),
        live=b.live(hpa=b.hpa(current_replicas=10, desired_replicas=10)),
    )
    decision = run(observations, hpa={"maxReplicasCeiling": 12})
    raised = decision.change is not None and decision.change.edit.setting is Setting.HPA_MAX_REPLICAS
    assert raised is saturated, decision.reason


@pytest.mark.parametrize("p95_seconds", [0.7, 1.2])  # a breach; an SLO emergency
def test_with_the_slo_breached_an_hpa_at_max_replicas_at_its_target_is_saturated(p95_seconds: float) -> None:
    # 75% of a 70% target is within the HPA's tolerance, but users wait: at maxReplicas with no ceiling room
    # the pods are what can grow.
    observations = b.observations(
        latency_p95_seconds=b.series(p95_seconds), cpu_usage_millicores_per_pod=b.series(750),
        replicas=b.series(10), live=b.live(hpa=b.hpa(current_replicas=10, desired_replicas=10)),
    )
    change = change_of(run(observations))
    _, after = resources(change)
    assert after[0].cpu_request_millicores == 1500, change.reason


def test_max_replicas_is_never_raised_without_a_ceiling() -> None:
    observations = b.observations(
        latency_p95_seconds=b.series(0.7), cpu_usage_millicores_per_pod=b.series(800), replicas=b.series(10),
        live=b.live(hpa=b.hpa(current_replicas=10)),
    )
    decision = run(observations)
    assert decision.change is None or decision.change.edit.setting is not Setting.HPA_MAX_REPLICAS


# --- pool tiers -----------------------------------------------------------------------------------------


def test_an_slo_emergency_with_clients_waiting_for_the_pool_grows_the_pool_not_the_cpu_target() -> None:
    # Waiting only in the last 2 minutes: not yet the pool's own emergency (every sample of 5 minutes).
    observations = replace(b.pool_observations(active=20, waiting=[0.0] * (b.SAMPLES - 2) + [5.0, 5.0]),
                           latency_p95_seconds=b.series(1.2), cpu_usage_millicores_per_pod=b.series(500))
    change = change_of(run(observations))
    assert change.edit.setting is Setting.POOL_SIZE and change.emergency, change.reason
    assert change.edit.to_value == PoolSize(default_pool_size=30, reserve_pool_size=20)
    assert "pool clients waiting in" in change.reason


def test_a_breach_with_clients_waiting_for_the_pool_grows_the_pool_before_the_cpu_target() -> None:
    # One sample of waiting, demand 7 under the pool of 20: neither sustained nor outgrown, but p95 is over the
    # SLO while clients waited, so the pool grows and latency feedback leaves the CPU target.
    observations = replace(b.pool_observations(active=5, waiting=[0.0] * (b.SAMPLES - 1) + [2.0]),
                           latency_p95_seconds=b.series(0.7), cpu_usage_millicores_per_pod=b.series(500))
    change = change_of(run(observations))
    assert change.edit.setting is Setting.POOL_SIZE and not change.emergency, change.reason
    assert "p95 700ms > SLO 500ms with pool clients waiting in" in change.reason


@pytest.mark.parametrize(("pool_spec", "p95_seconds"), [
    ({"enabled": False}, 0.7), ({"size": {"min": 2, "max": 20}}, 0.7),  # pool not tuned; pool at size.max
    ({"enabled": False}, 1.2), ({"size": {"min": 2, "max": 20}}, 1.2),  # the same in an SLO emergency
])
def test_a_pool_that_cannot_grow_leaves_the_cpu_target_as_the_lever(
    pool_spec: dict[str, Any], p95_seconds: float
) -> None:
    observations = replace(b.pool_observations(active=20, waiting=[0.0] * (b.SAMPLES - 2) + [5.0, 5.0]),
                           latency_p95_seconds=b.series(p95_seconds), cpu_usage_millicores_per_pod=b.series(500))
    pool = {"pgbouncer": {"configMapRef": {"name": "pgbouncer"}}, **pool_spec}
    change = change_of(run(observations, pool=pool))
    assert (change.edit.setting, change.edit.to_value) == (Setting.HPA_CPU_TARGET, 60), change.reason


def test_an_slo_emergency_does_not_grow_the_pool_on_an_unknown_server_active() -> None:
    observations = replace(b.pool_observations(active=20, waiting=[0.0] * (b.SAMPLES - 2) + [5.0, 5.0]),
                           pool_server_active=b.unknown(), latency_p95_seconds=b.series(1.2),
                           cpu_usage_millicores_per_pod=b.series(500))
    decision = run(observations)
    assert decision.change is None or decision.change.edit.setting is not Setting.POOL_SIZE, decision.reason


@pytest.mark.parametrize(("live_default", "expected"), [(10, (20, 10)), (20, (30, 20)), (30, (40, 30)),
                                                         (25, (30, 20))])
def test_sustained_waiting_grows_the_pool_one_tier(live_default: int, expected: tuple[int, int]) -> None:
    waiting = [0.0] * 25 + [3.0] * 6  # waiting in most of the last 5 minutes, not all of them
    waiting[-1] = 0.0
    change = change_of(run(b.pool_observations(active=live_default, waiting=waiting, default=live_default,
                                             reserve=live_default // 2), guardrails={"maxStepPercent": 100}))
    assert change.edit.setting is Setting.POOL_SIZE
    assert change.edit.to_value == PoolSize(default_pool_size=expected[0], reserve_pool_size=expected[1])
    assert change.target == "ConfigMap/pgbouncer"
    assert change.emergency is False


def test_pool_growth_is_limited_by_max_step_percent_between_tiers() -> None:
    change = change_of(run(b.pool_observations(active=10, waiting=[0.0] * 25 + [3.0] * 5 + [0.0], default=10,
                                             reserve=5)))
    assert change.edit.to_value == PoolSize(default_pool_size=15, reserve_pool_size=8)  # 10 -> 20 is +100%
    assert "step limit" in change.reason


def test_a_pool_below_size_min_grows_toward_it_by_at_most_one_step_and_says_why() -> None:
    # live 5/2, size.min 50: the bound raises the goal, the step limit (+50%) still wins: 5 -> 7, not 50.
    change = change_of(run(b.pool_observations(active=5, waiting=3, default=5, reserve=2),
                           pool={"size": {"min": 50, "max": 100}}))
    assert change.edit.to_value == PoolSize(default_pool_size=7, reserve_pool_size=4)
    assert change.table_row.startswith("size.min 50")
    assert "step limit +50% = 7" in change.reason


def test_a_small_pool_grows_by_at_least_one_connection_when_its_step_rounds_down_to_none() -> None:
    # live 3/1, maxStepPercent 20: 20% of 3 rounds down to 0, which would leave clients waiting for good.
    change = change_of(run(b.pool_observations(active=3, waiting=4, default=3, reserve=1),
                           pool={"size": {"min": 5, "max": 100}}, guardrails={"maxStepPercent": 20}))
    assert isinstance(change.edit.to_value, PoolSize) and change.edit.to_value.default_pool_size == 4


def test_a_pool_growth_never_lowers_a_reserve_set_above_the_tiers() -> None:
    # 20 + 40 by hand: the next tier's 30 + 15 would be fewer server connections in all while clients wait.
    change = change_of(run(b.pool_observations(active=20, waiting=5, default=20, reserve=40)))
    assert change.edit.to_value == PoolSize(default_pool_size=30, reserve_pool_size=40)


def test_pool_above_ninety_percent_grows_a_tier() -> None:
    change = change_of(run(b.pool_observations(active=19)))
    assert change.edit.to_value == PoolSize(default_pool_size=30, reserve_pool_size=20)


@pytest.mark.parametrize(("active", "grows"), [(18, False), (18.2, True)])
def test_pool_grow_threshold_is_ninety_percent(active: float, grows: bool) -> None:
    decision = run(b.pool_observations(active=active))
    assert (decision.change is not None and decision.change.edit.setting is Setting.POOL_SIZE) is grows


def test_beyond_peak_the_pool_grows_by_max_step_percent_up_to_size_max() -> None:
    change = change_of(run(b.pool_observations(active=40, waiting=2, default=40, reserve=30),
                           pool={"size": {"min": 5, "max": 55}}))
    assert change.edit.to_value == PoolSize(default_pool_size=55, reserve_pool_size=41)
    assert "size.max" in change.reason


def test_pool_growth_respects_max_server_connections_with_the_reserve_counted() -> None:
    change = change_of(run(b.pool_observations(active=20, waiting=2, replicas=2), pool={"maxServerConnections": 90}))
    size = change.edit.to_value
    assert isinstance(size, PoolSize)
    assert (size.default_pool_size + size.reserve_pool_size) * 2 <= 90
    assert size.default_pool_size > 20


def test_pool_that_cannot_grow_within_the_budget_is_not_changed() -> None:
    decision = run(b.pool_observations(active=20, waiting=2, replicas=2), pool={"maxServerConnections": 60})
    assert decision.change is None or decision.change.edit.setting is not Setting.POOL_SIZE
    assert "maxServerConnections" in decision.reason


def test_one_waiting_sample_after_a_scrape_gap_is_not_sustained_waiting() -> None:
    # The five samples before the newest are missing: the newest alone (clients waiting) is 100% of the
    # samples of the last 5 minutes, but not "sustained" over them.
    full = b.series(0.0)
    waiting = Series(full.timestamps_seconds[:-6] + full.timestamps_seconds[-1:], (*full.values[:-6], 3.0))
    decision = run(replace(b.pool_observations(active=5), pool_client_waiting=waiting))
    assert decision.change is None or decision.change.edit.setting is not Setting.POOL_SIZE, decision.reason
    assert "the samples do not fill the last 300s" in decision.reason


def test_two_samples_at_the_ends_of_a_gap_are_not_sustained_waiting() -> None:
    # t-300s (nobody waiting) and now (3 waiting) are all that is left of the span: "waiting in 50% of the last
    # 300s" on 2 of its 6 steps is no evidence of a sustained wait.
    full = b.series(0.0)
    stamps = full.timestamps_seconds
    waiting = Series(stamps[:-5] + stamps[-1:], (*full.values[:-5], 3.0))
    assert waiting.timestamps_seconds[-2] == stamps[-1] - 300
    decision = run(replace(b.pool_observations(active=5), pool_client_waiting=waiting))
    assert decision.change is None or decision.change.edit.setting is not Setting.POOL_SIZE, decision.reason


def test_sustained_waiting_grows_the_pool_whatever_gap_the_server_active_series_has() -> None:
    # Waiting in 4 of the last 6 samples, all there; the server-active series (pool use) misses its first four:
    # the waiting alone is the evidence, and use is judged on its own samples.
    observations = b.pool_observations(active=5, waiting=[0.0] * (b.SAMPLES - 6) + [0.0, 3.0, 3.0, 0.0, 3.0, 3.0])
    active = observations.pool_server_active
    assert isinstance(active, Series)
    gappy = Series(active.timestamps_seconds[:-6] + active.timestamps_seconds[-2:],
                   active.values[:-6] + active.values[-2:])
    change = change_of(run(replace(observations, pool_server_active=gappy)))
    assert change.edit.setting is Setting.POOL_SIZE and "Pool clients waiting in 67% of the last 300s" in change.reason


def test_waiting_in_every_sample_of_the_last_five_minutes_is_a_pool_emergency() -> None:
    change = change_of(run(b.pool_observations(active=20, waiting=[0.0] * 25 + [2.0] * 6)))
    assert change.emergency is True


@pytest.mark.parametrize(("live_default", "active", "expected"), [(20, 7, 10), (30, 10, 20), (40, 14, 30)])
def test_pool_under_half_all_window_shrinks_one_tier(live_default: int, active: float, expected: int) -> None:
    tier = next(t for t in POOL_TIERS if t.default_pool_size == expected)
    live_reserve = next(t for t in POOL_TIERS if t.default_pool_size == live_default).reserve_pool_size
    change = change_of(run(b.pool_observations(active=active, default=live_default, reserve=live_reserve)))
    assert change.edit.to_value == PoolSize(default_pool_size=expected, reserve_pool_size=tier.reserve_pool_size)


def test_a_pool_under_half_is_not_shrunk_when_a_client_waited_in_the_window() -> None:
    # Used 5 of 20 at its peak (6 with the waiting client: 60% of the smaller pool), but one sample had a client
    # waiting: the pool was too small at that moment.
    decision = run(b.pool_observations(active=5, waiting=[0.0] * (b.SAMPLES - 10) + [1.0] + [0.0] * 9))
    assert decision.change is None or decision.change.edit.setting is not Setting.POOL_SIZE, decision.reason


def test_a_pool_under_half_is_not_shrunk_before_the_window_is_covered() -> None:
    # Ten minutes of samples in a 30-minute window: "under 50% for the whole window" is not yet known.
    observations = b.pool_observations(active=[7.0] * 10)
    decision = run(observations)
    assert decision.change is None or decision.change.edit.setting is not Setting.POOL_SIZE, decision.reason
    assert "pool shrinking: pool under 50%, but the window is not yet covered" in decision.reason


def test_a_pool_shrink_never_raises_the_reserve() -> None:
    change = change_of(run(b.pool_observations(active=10, default=40, reserve=5)))
    assert change.edit.to_value == PoolSize(default_pool_size=30, reserve_pool_size=5)


@pytest.mark.parametrize(("active", "shrinks"), [(9.9, False), (7.9, True)])
def test_pool_shrinks_only_when_the_smaller_pool_stays_under_the_warning_level(active: float, shrinks: bool) -> None:
    # 20 -> 10: a peak of 9.9 would be 99% of 10 (>= 80% warning), 7.9 would be 79%.
    decision = run(b.pool_observations(active=active))
    assert (decision.change is not None and decision.change.edit.setting is Setting.POOL_SIZE) is shrinks


def test_pool_is_not_shrunk_below_size_min() -> None:
    decision = run(b.pool_observations(active=2, default=10, reserve=5), pool={"size": {"min": 10, "max": 100}})
    assert decision.change is None


# --- peaks over guardrails.peakWindow -------------------------------------------------------------------


@pytest.mark.parametrize(("peak_cpu", "cuts_cpu"), [(4200.0, True), (4201.0, False)])
def test_a_cpu_cut_needs_max_replicas_to_cover_the_peak_window_cpu_with_headroom(
    peak_cpu: float, cuts_cpu: bool
) -> None:
    # 1000m -> 750m, target stays at the Steady row's 70%: 10 x 750m x 70% = 5250m covers 1.25 x 4200m, not 4201m.
    change = change_of(run(over_provisioned_observations(peak_cpu=peak_cpu)))
    _, after = resources(change)
    assert (after[0].cpu_request_millicores == 750) is cuts_cpu
    assert after[0].memory_request_bytes == 768 * b.MI  # memory is cut either way
    if not cuts_cpu:
        assert change.coupled is None


@pytest.mark.parametrize(("peak_memory_mib", "cuts_memory"), [(491.0, True), (492.0, False)])
def test_a_memory_cut_needs_the_request_to_hold_the_peak_window_working_set_with_headroom(
    peak_memory_mib: float, cuts_memory: bool
) -> None:
    # 1Gi -> 768Mi under an 80% memory target holds 614.4Mi: enough for 1.25 x 491Mi, not for 1.25 x 492Mi.
    change = change_of(run(over_provisioned_observations(peak_memory=peak_memory_mib * b.MI)))
    _, after = resources(change)
    assert (after[0].memory_request_bytes == 768 * b.MI) is cuts_memory
    assert after[0].cpu_request_millicores == 750


def test_nothing_is_cut_while_both_peaks_are_unknown() -> None:
    decision = run(over_provisioned_observations(peak_cpu=Unknown("no series"), peak_memory=Unknown("no series")))
    assert decision.change is None
    assert {"peak_cpu_usage_millicores_total", "peak_memory_working_set_bytes_per_pod"} <= set(decision.blocked_by)


@pytest.mark.parametrize(("history_hours", "peak_window_hours", "cuts"), [
    (24.0, 168.0, True), (23.9, 168.0, False),  # a day of the week's history
    (11.4, 12.0, True), (11.3, 12.0, False),  # 95% of a peak window shorter than a day (a scrape gap allowed)
])
def test_a_cut_waits_for_a_day_of_cpu_history_or_nearly_all_of_a_shorter_peak_window(
    history_hours: float, peak_window_hours: float, cuts: bool
) -> None:
    observations = replace(over_provisioned_observations(), cpu_history_seconds=history_hours * 3600,
                           peak_window_seconds=peak_window_hours * 3600)
    decision = run(observations, guardrails={"peakWindow": f"{peak_window_hours:g}h"})
    assert (decision.change is not None) is cuts, decision.reason
    if not cuts:
        assert f"only {history_hours:.1f}h of CPU history over {peak_window_hours:g}h" in decision.reason


def test_the_history_a_cut_needs_follows_the_profiles_own_peak_window_not_the_snapshots_widest() -> None:
    # The snapshot read a week (another profile's peakWindow); this profile's 6 h needs 5.7 h of it.
    observations = replace(over_provisioned_observations(), cpu_history_seconds=6 * 3600.0)
    assert run(observations, guardrails={"peakWindow": "6h"}).change is not None
    assert run(observations).change is None


def test_an_unknown_cpu_history_blocks_every_cut() -> None:
    decision = run(replace(over_provisioned_observations(), cpu_history_seconds=Unknown("no series")))
    assert decision.change is None
    assert "cpu_history_seconds" in decision.blocked_by


@pytest.mark.parametrize(("history_hours", "shrinks"), [(24.0, True), (23.9, False)])
def test_a_pool_shrink_waits_for_a_day_of_the_pools_own_history(history_hours: float, shrinks: bool) -> None:
    # The workload was watched all week, its pooler's exporter only since history_hours ago.
    observations = replace(b.pool_observations(active=5, peak_demand=7.0), pool_history_seconds=history_hours * 3600)
    decision = run(observations)
    assert (decision.change is not None and decision.change.edit.setting is Setting.POOL_SIZE) is shrinks
    if not shrinks:
        assert f"only {history_hours:.1f}h of pool-demand history over 168h" in decision.reason


def test_an_unknown_pool_history_blocks_the_shrink() -> None:
    decision = run(replace(b.pool_observations(active=5, peak_demand=7.0), pool_history_seconds=Unknown("no series")))
    assert decision.change is None
    assert "pool_history_seconds" in decision.blocked_by


@pytest.mark.parametrize(("peak_demand", "shrinks"), [(7.9, True), (8.0, False)])
def test_a_pool_shrink_needs_the_peak_window_demand_under_the_warning_level_of_the_smaller_pool(
    peak_demand: float, shrinks: bool
) -> None:
    # 20 -> 10 with a quiet window (5 active): the day's peak of 8.0 would be 80% of 10, 7.9 is 79%.
    decision = run(b.pool_observations(active=5, peak_demand=peak_demand))
    assert (decision.change is not None and decision.change.edit.setting is Setting.POOL_SIZE) is shrinks


def test_the_pool_is_not_shrunk_while_its_peak_window_demand_is_unknown() -> None:
    decision = run(b.pool_observations(active=5, peak_demand=Unknown("not read")))
    assert decision.change is None
    assert "peak_pool_demand_connections" in decision.blocked_by


# --- hysteresis and the reversal hold ---------------------------------------------------------------------


@pytest.mark.parametrize(("low", "high", "was_bursty", "label"), [
    (73.0, 127.0, True, "Bursty"),  # CV 0.27 > 0.25 (leave threshold) keeps an earlier Bursty
    (73.0, 127.0, False, "Steady"),  # ...but 0.27 <= 0.30 does not enter it
    (76.0, 124.0, True, "Steady"),  # CV 0.24 <= 0.25 leaves it
])
def test_bursty_load_is_left_only_under_the_leave_thresholds(
    low: float, high: float, was_bursty: bool, label: str
) -> None:
    rate = b.series([low if i % 2 else high for i in range(b.SAMPLES)])
    assert classify_load(b.observations(request_rate_per_second=rate), was_bursty=was_bursty).label == label


@pytest.mark.parametrize(("table_row", "label"), [
    ("Bursty, unpredictable", "Bursty"),  # perfpilot's own Bursty-row decision: the leave thresholds apply
    ("latency feedback", "Steady"),  # the same 60% from the latency feedback says nothing about the load
])
def test_perfpilots_own_bursty_decision_is_what_engages_the_leave_thresholds(table_row: str, label: str) -> None:
    rate = b.series([73.0 if i % 2 else 127.0 for i in range(b.SAMPLES)])  # CV 0.27: between the thresholds
    observations = b.observations(request_rate_per_second=rate, live=b.live(hpa=b.hpa(cpu_target_percent=60)))
    state = TuningState(last_change=ChangeRecord(
        at=b.NOW - b.minutes(300), target="HorizontalPodAutoscaler/api",
        setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60, table_row=table_row,
        verdict=Verdict.KEPT, verdict_at=b.NOW - b.minutes(285)))
    assert decide(b.profile(), observations, state, b.NOW).classification.load_pattern == label
    # The live 60% alone (no record: set by hand, or before perfpilot) engages nothing either.
    assert decide(b.profile(), observations, TuningState(), b.NOW).classification.load_pattern == "Steady"


def test_a_coupled_target_move_after_the_bursty_decision_keeps_it() -> None:
    # Bursty row 70% -> 60%, then a CPU raise with its coupled target 60% -> 50% (the replica count kept).
    rate = b.series([73.0 if i % 2 else 127.0 for i in range(b.SAMPLES)])  # CV 0.27: between the thresholds
    observations = b.observations(request_rate_per_second=rate, live=b.live(hpa=b.hpa(cpu_target_percent=50)))
    bursty = ChangeRecord(
        at=b.NOW - b.minutes(600), target="HorizontalPodAutoscaler/api",
        setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60, table_row="Bursty, unpredictable",
        verdict=Verdict.KEPT, verdict_at=b.NOW - b.minutes(585))
    raise_ = ChangeRecord(
        at=b.NOW - b.minutes(300), target="Deployment/api",
        setting=Setting.RESOURCES, from_value=[b.container()],
                  to_value=[b.container(cpu_request_millicores=1500, cpu_limit_millicores=3000)],
        coupled=Edit(setting=Setting.HPA_CPU_TARGET, from_value=60, to_value=50), table_row="CPU-bound",
        verdict=Verdict.KEPT, verdict_at=b.NOW - b.minutes(285))
    state = TuningState(history=[bursty], last_change=raise_)
    assert decide(b.profile(), observations, state, b.NOW).classification.load_pattern == "Bursty"


HPA_TARGET, POOL_TARGET = "HorizontalPodAutoscaler/api", "ConfigMap/pgbouncer"


def _kept(edit: Edit, *, minutes_ago: float, target: str = HPA_TARGET, table_row: str = "") -> ChangeRecord:
    """A change made ``minutes_ago`` and judged Kept 15 minutes later."""
    return ChangeRecord(at=b.NOW - b.minutes(minutes_ago), target=target, setting=edit.setting,
                        from_value=edit.from_value, to_value=edit.to_value, table_row=table_row,
                        verdict=Verdict.KEPT, verdict_at=b.NOW - b.minutes(minutes_ago - 15))


def _cpu_target_edit(before: int, after: int) -> Edit:
    return Edit(setting=Setting.HPA_CPU_TARGET, from_value=before, to_value=after)


def _pool_edit(before: tuple[int, int], after: tuple[int, int]) -> Edit:
    return Edit(setting=Setting.POOL_SIZE,
                from_value=PoolSize(default_pool_size=before[0], reserve_pool_size=before[1]),
                to_value=PoolSize(default_pool_size=after[0], reserve_pool_size=after[1]))


def _slowed_down(minutes_ago: float) -> TuningState:
    """A Moderate -> Slow scale-down change (toward capacity) made ``minutes_ago``, kept."""
    edit = Edit(setting=Setting.HPA_SCALE_DOWN, from_value=b.MODERATE_DOWN, to_value=SCALE_DOWN_ROWS["Slow"].to_rules())
    return TuningState(last_change=_kept(edit, minutes_ago=minutes_ago))


@pytest.mark.parametrize(("minutes_ago", "reverses"), [(121.0, False), (23 * 60 + 59, False), (24 * 60 + 1, True)])
def test_a_setting_is_not_moved_back_within_a_day(minutes_ago: float, reverses: bool) -> None:
    # Steady load, no reversals: the Moderate row is due, which undoes the Slow row written minutes_ago.
    observations = b.observations(live=b.live(hpa=b.hpa(scale_down=SCALE_DOWN_ROWS["Slow"].to_rules())))
    decision = decide(b.profile(), observations, _slowed_down(minutes_ago), b.NOW)
    moved = decision.change is not None and decision.change.edit.setting is Setting.HPA_SCALE_DOWN
    assert moved is reverses
    if not reverses:
        assert "moved the other way" in decision.reason


@pytest.mark.parametrize(("p95_seconds", "lowers"), [(0.35, False), (0.6, True)])
def test_a_move_toward_capacity_reverses_a_recent_move_only_in_a_shortage(p95_seconds: float, lowers: bool) -> None:
    # The CPU target went 60% -> 70% 30 minutes ago. Bursty load wants 60% again: held without a shortage;
    # with p95 above the SLO (and CPU under the target) latency feedback may lower it at once.
    raised = _kept(_cpu_target_edit(60, 70), minutes_ago=30)
    observations = b.observations(request_rate_per_second=bursty_rate(), latency_p95_seconds=b.series(p95_seconds),
                                  cpu_usage_millicores_per_pod=b.series(600))
    decision = decide(b.profile(), observations, TuningState(last_change=raised), b.NOW)
    lowered = decision.change is not None and decision.change.edit == Edit(
        setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60)
    assert lowered is lowers, decision.reason


def test_a_pool_grown_after_yesterdays_shrink_may_grow_again_within_the_hold() -> None:
    # Shrunk 30 -> 20 twenty hours ago, grown back 20 -> 30 five hours ago: growing on to 40 goes on in the
    # latest move's direction and undoes nothing.
    state = TuningState(last_change=_kept(_pool_edit((20, 10), (30, 20)), minutes_ago=5 * 60, target=POOL_TARGET),
                        history=[_kept(_pool_edit((30, 20), (20, 10)), minutes_ago=20 * 60, target=POOL_TARGET)])
    waiting = [0.0] * (b.SAMPLES - 10) + [4.0] + [0.0] * 9  # a burst 10 minutes ago: the pool was outgrown
    observations = b.pool_observations(active=28, waiting=waiting, default=30, reserve=20)
    change = change_of(decide(b.profile(guardrails={"maxStepPercent": 100}), observations, state, b.NOW))
    assert change.edit.setting is Setting.POOL_SIZE
    assert change.edit.to_value == PoolSize(default_pool_size=40, reserve_pool_size=30)


def _request_raise(*, verdict: Verdict, minutes_ago: float = 180) -> ChangeRecord:
    """A kept (or not) CPU request raise 1000m -> 1500m whose coupled edit lowered the CPU target 60% -> 50%."""
    return ChangeRecord(
        at=b.NOW - b.minutes(minutes_ago), target="Deployment/api",
        setting=Setting.RESOURCES, from_value=[b.container()],
                  to_value=[b.container(cpu_request_millicores=1500)],
        coupled=Edit(setting=Setting.HPA_CPU_TARGET, from_value=60, to_value=50),
        verdict=verdict, verdict_at=b.NOW - b.minutes(minutes_ago - 15),
    )


@pytest.mark.parametrize("minutes_ago", [180, 60])  # 60: inside the reversal hold, which a coupled edit is not held by
def test_a_coupled_cpu_target_returns_toward_its_row_once_the_raise_is_kept_and_the_slo_met(minutes_ago: int) -> None:
    observations = b.observations(live=b.live(hpa=b.hpa(cpu_target_percent=50)))  # p95 350ms: under the SLO
    state = TuningState(last_change=_request_raise(verdict=Verdict.KEPT, minutes_ago=minutes_ago))
    decision = decide(b.profile(), observations, state, b.NOW)
    change = change_of(decision)
    assert (change.edit.setting, change.edit.from_value, change.edit.to_value) == (Setting.HPA_CPU_TARGET, 50, 60)
    assert "coupled with the last request raise" in change.reason


@pytest.mark.parametrize("verdict", [Verdict.PENDING, Verdict.ROLLED_BACK])
def test_a_coupled_cpu_target_waits_for_the_raise_to_be_kept(verdict: Verdict) -> None:
    # Long past cooldown and verification: only the verdict keeps the 60%-of-SLO bar in place. The raise is
    # live (1500m requests, 50% target), so a pending one is judged, not found reverted or half rolled back.
    raised = (b.container(cpu_request_millicores=1500),)
    observations = b.observations(live=b.live(containers=raised, hpa=b.hpa(cpu_target_percent=50)))
    state = TuningState(last_change=_request_raise(verdict=verdict, minutes_ago=180))
    decision = decide(b.profile(), observations, state, b.NOW)
    assert decision.change is None or decision.change.edit.setting is not Setting.HPA_CPU_TARGET, decision.reason
    assert "raising needs p95 under 300ms" in decision.reason


def test_the_coupled_return_does_not_open_the_hold_on_an_older_lowering() -> None:
    # Latency feedback 70 -> 60 twenty hours ago, a request raise with its coupled 60 -> 50 three hours ago,
    # the coupled return 50 -> 60 an hour ago: the Steady row's 70 would undo the feedback's move inside the day.
    feedback = _kept(_cpu_target_edit(70, 60), minutes_ago=20 * 60, table_row="latency feedback")
    returned = _kept(_cpu_target_edit(50, 60), minutes_ago=60, table_row="Steady, predictable")
    state = TuningState(last_change=returned, history=[feedback, _request_raise(verdict=Verdict.KEPT)])
    observations = b.observations(live=b.live(hpa=b.hpa(cpu_target_percent=60)), latency_p95_seconds=b.series(0.2))
    decision = decide(b.profile(), observations, state, b.NOW)
    assert decision.change is None or decision.change.edit.setting is not Setting.HPA_CPU_TARGET, decision.reason
    assert "hpa.cpuTarget was moved the other way" in decision.reason


def test_a_coupled_cpu_target_returns_no_further_than_where_it_came_from() -> None:
    # Latency feedback 70 -> 60 twenty hours ago, then a kept raise coupled 60 -> 55: the Steady row's step
    # (55 -> 65) would undo the feedback inside the day; the return stops at 60, where the target came from.
    feedback = _kept(_cpu_target_edit(70, 60), minutes_ago=20 * 60, table_row="latency feedback")
    raise_ = _request_raise(verdict=Verdict.KEPT).model_copy(update={"coupled": _cpu_target_edit(60, 55)})
    state = TuningState(last_change=raise_, history=[feedback])
    observations = b.observations(live=b.live(hpa=b.hpa(cpu_target_percent=55)))
    change = change_of(decide(b.profile(), observations, state, b.NOW))
    assert (change.edit.setting, change.edit.from_value, change.edit.to_value) == (Setting.HPA_CPU_TARGET, 55, 60)


def test_a_coupled_cpu_target_stays_while_the_slo_was_breached_in_the_window() -> None:
    latency = b.series([0.35] * (b.SAMPLES - 1) + [0.52])
    observations = b.observations(live=b.live(hpa=b.hpa(cpu_target_percent=50)), latency_p95_seconds=latency)
    decision = decide(b.profile(), observations, TuningState(last_change=_request_raise(verdict=Verdict.KEPT)), b.NOW)
    assert decision.change is None or decision.change.edit.setting is not Setting.HPA_CPU_TARGET
    assert "coupled target returns to its row with the SLO met all window" in decision.reason


def test_a_target_lowered_by_latency_feedback_after_the_raise_needs_the_relax_threshold() -> None:
    feedback = _kept(_cpu_target_edit(50, 40), minutes_ago=150, table_row="latency feedback")
    state = TuningState(last_change=feedback, history=[_request_raise(verdict=Verdict.KEPT)])
    observations = b.observations(live=b.live(hpa=b.hpa(cpu_target_percent=40)))
    decision = decide(b.profile(hpa={"cpuTarget": {"min": 40, "max": 90}}), observations, state, b.NOW)
    assert decision.change is None or decision.change.edit.setting is not Setting.HPA_CPU_TARGET
    assert "raising needs p95 under 300ms" in decision.reason


@pytest.mark.parametrize(("peak_rise", "cuts_cpu"), [(150.0, True), (151.0, False)])
def test_a_cpu_cut_keeps_the_running_pods_able_to_carry_the_largest_rise_of_the_peak_window(
    peak_rise: float, cuts_cpu: bool
) -> None:
    # 2 pods x 750m = 1500m carry (100 + 150) req/s x 6m per request/s, not (100 + 151) req/s.
    change = change_of(run(over_provisioned_observations(peak_rise=peak_rise)))
    before, after = resources(change)
    assert (after[0].cpu_request_millicores < before[0].cpu_request_millicores) is cuts_cpu
    if not cuts_cpu:
        assert ("2 pods x 750m = 1500m would not carry a spike while new pods start: max(the window's peak "
                "100.0/s, its median 100.0/s + the largest rise over 168h 151.0/s within 5 min) = 251.0/s") \
            in change.reason


def test_an_unknown_largest_rise_blocks_the_cpu_cut_only() -> None:
    change = change_of(run(over_provisioned_observations(peak_rise=b.unknown("no series"))))
    before, after = resources(change)
    assert after[0].cpu_request_millicores == before[0].cpu_request_millicores
    assert after[0].memory_request_bytes < before[0].memory_request_bytes
    assert "CPU stays: peak_request_rate_rise_per_second unknown: no CPU cut" in change.reason


def _written(hours_ago: float | None, *, waiting_hours: float | None = None) -> TuningState:
    """A kept pool change ``hours_ago`` (perfpilot's last write), or no write at all; a resources change
    waiting for off-peak for ``waiting_hours``, or none waiting."""
    waiting_since = b.NOW - b.minutes(60 * waiting_hours) if waiting_hours is not None else None
    if hours_ago is None:
        return TuningState(off_peak_wait_since=waiting_since)
    return TuningState(last_change=_kept(_pool_edit((20, 10), (30, 20)), minutes_ago=60 * hours_ago,
                                         target=POOL_TARGET), off_peak_wait_since=waiting_since)


@dataclass(frozen=True)
class Rollout:
    """One moment for a memory raise: 100/s is the week's peak, the HPA's floor is 2."""

    rolls_out: bool
    rate: float = 81.0
    working_set_mi: int = 950
    oom_kills: int | Unknown = 0
    pods: int = 4
    written_hours_ago: float | None = 2.0
    waiting_hours: float | None = None
    p95_seconds: float = 0.35


@pytest.mark.parametrize("moment", [
    Rollout(rolls_out=False),                   # 81% of the peak, the HPA above its floor: the busy hour
    Rollout(rolls_out=True, rate=80.0),         # off-peak
    Rollout(rolls_out=True, working_set_mi=1850),  # 1850Mi >= 90% of the 2Gi limit: urgent
    Rollout(rolls_out=True, oom_kills=1),       # OOMKilled: urgent
    Rollout(rolls_out=True, oom_kills=b.unknown("no Pods given")),  # kills may be what the raise is for
    Rollout(rolls_out=True, pods=2),            # at minReplicas the pods are under the target and cover the gap
    Rollout(rolls_out=False, waiting_hours=23.9),  # waiting since almost a day
    Rollout(rolls_out=True, waiting_hours=24.1),  # near the peak a day since the wait began: no quieter hour
    Rollout(rolls_out=False, written_hours_ago=None),  # perfpilot's first write waits too, from now
    Rollout(rolls_out=False, rate=50.0, p95_seconds=0.45),  # off-peak, but p95 at 90% of the SLO: no room
    Rollout(rolls_out=True, rate=50.0, p95_seconds=0.40),  # p95 at 80% of the SLO, not above: room enough
    Rollout(rolls_out=False, rate=50.0, p95_seconds=0.41),  # just above it: no room
    Rollout(rolls_out=True, rate=50.0, p95_seconds=0.45, pods=2),  # at the floor the pods cover the gap
])
def test_a_memory_raise_that_is_not_urgent_waits_for_off_peak(moment: Rollout) -> None:
    observations = b.observations(
        memory_working_set_bytes_per_pod=b.series(moment.working_set_mi * b.MI),
        request_rate_per_second=b.series(moment.rate), replicas=b.series(moment.pods),
        latency_p95_seconds=b.series(moment.p95_seconds),
        cpu_usage_millicores_per_pod=b.series(600),  # under the 70% target: memory-bound only
        peak_request_rate_per_second=100.0,
        live=b.live(oom_kills_in_window=moment.oom_kills,
                    hpa=b.hpa(current_replicas=moment.pods, desired_replicas=moment.pods)),
    )
    decision = decide(b.profile(), observations, _written(moment.written_hours_ago,
                                                          waiting_hours=moment.waiting_hours), b.NOW)
    if moment.rolls_out:
        _, after = resources(change_of(decision))
        assert after[0].memory_request_bytes > 1024 * b.MI and after[0].cpu_request_millicores == 1000
    else:
        assert decision.change is None or decision.change.edit.setting is not Setting.RESOURCES, decision.reason
        why = (f"p95 {moment.p95_seconds * 1000:.0f}ms in the last 5 minutes > 80% of the SLO with the HPA above "
               f"minReplicas"
               if moment.p95_seconds > 0.4 else
               "request rate 81.0/s > 80% of the 168h peak 100.0/s with the HPA above minReplicas")
        assert f"resources change waits for off-peak ({why}" in decision.reason


@pytest.mark.parametrize(("latency", "rolls_out"), [
    (b.series([0.45] * (b.SAMPLES - 6) + [0.35] * 6), True),  # near the SLO, but not in the last 5 minutes
    (b.series([0.35] * (b.SAMPLES - 2) + [0.45] * 2), False),  # one minute near the SLO in the last 5 is enough
])
def test_only_the_last_five_minutes_of_a_known_p95_hold_a_rollout_off_peak(latency: Signal, rolls_out: bool) -> None:
    observations = b.observations(
        memory_working_set_bytes_per_pod=b.series(950 * b.MI), request_rate_per_second=b.series(50.0),
        replicas=b.series(4), latency_p95_seconds=latency, cpu_usage_millicores_per_pod=b.series(600),
        peak_request_rate_per_second=100.0, live=b.live(hpa=b.hpa(current_replicas=4, desired_replicas=4)),
    )
    decision = decide(b.profile(), observations, _written(2.0), b.NOW)
    rolled = decision.change is not None and decision.change.edit.setting is Setting.RESOURCES
    assert rolled is rolls_out, decision.reason


@pytest.mark.parametrize(("latency", "busy"), [(b.unknown("no series"), False), (b.series(0.45), True)])
def test_an_unknown_p95_does_not_make_it_the_busy_hour(latency: Signal, busy: bool) -> None:
    observations = b.observations(latency_p95_seconds=latency, request_rate_per_second=b.series(50.0),
                                  peak_request_rate_per_second=100.0)
    profile = b.profile()
    context = RuleContext(
        profile=profile, observations=observations, thresholds=DEFAULT_THRESHOLDS, now_seconds=b.NOW.timestamp(),
        detail=compute_classification_detail(profile, observations, thresholds=DEFAULT_THRESHOLDS),
    )
    assert (check_rollout_at_busy_hour(context) is not None) is busy


def test_a_steady_service_at_its_peak_is_still_cut_at_min_replicas() -> None:
    # The rate sits at its week's peak all the time (steady): a cut at the floor does not wait for off-peak.
    observations = replace(over_provisioned_observations(), peak_request_rate_per_second=100.0)
    change = change_of(decide(b.profile(), observations, _written(2.0), b.NOW))
    assert change.edit.setting is Setting.RESOURCES


@pytest.mark.parametrize(("current_replicas", "oom_kills", "working_set_mi", "rolls_out"), [
    (10, 0, 950, False),  # at maxReplicas: the rollout's unavailable pods could not be replaced
    (9, 0, 950, True),
    (10, 1, 950, True),   # OOMKilled pods are out already: more memory brings them back
    (10, b.unknown("no Pods given"), 950, True),  # unknown kills may be what the raise is for
    (10, 0, 1850, True),  # 1850Mi >= 90% of the 2Gi limit: about to be OOMKilled
])
def test_a_memory_only_rollout_waits_while_the_hpa_is_at_max_replicas(
    current_replicas: int, oom_kills: int | Unknown, working_set_mi: int, rolls_out: bool
) -> None:
    observations = b.observations(
        memory_working_set_bytes_per_pod=b.series(working_set_mi * b.MI), replicas=b.series(current_replicas),
        cpu_usage_millicores_per_pod=b.series(600),  # under the 70% target: not saturated, memory-bound only
        live=b.live(oom_kills_in_window=oom_kills,
                    hpa=b.hpa(current_replicas=current_replicas, desired_replicas=current_replicas)),
    )
    decision = run(observations)
    if rolls_out:
        _, after = resources(change_of(decision))
        assert after[0].memory_request_bytes == 1536 * b.MI and after[0].cpu_request_millicores == 1000
    else:
        assert decision.change is None or decision.change.edit.setting is not Setting.RESOURCES, decision.reason
        assert "resources change without more CPU waits until the HPA is below maxReplicas" in decision.reason


def _spiky_observations(*, peak_rise: float, rate: float = 30.0, usage: float = 500.0) -> Observations:
    """The SLO breached at minute 15 while the HPA went from minReplicas 2 to 3 pods, Aggressive scale-up
    live; ``usage`` per pod at ``rate`` req/s (by default about 42m per request/s: the usual load fits the
    2-pod floor)."""
    replicas = b.series([2.0] * 15 + [3.0] * (b.SAMPLES - 15))
    return replace(b.observations(
        replicas=replicas, request_rate_per_second=b.series(rate), cpu_usage_millicores_per_pod=b.series(usage),
        latency_p95_seconds=b.series([0.35] * 15 + [0.6] + [0.35] * (b.SAMPLES - 16)),
        live=b.live(hpa=b.hpa(current_replicas=3, desired_replicas=3,
                              scale_up=SCALE_UP_ROWS["Aggressive"].to_rules())),
    ), peak_request_rate_rise_per_second=peak_rise)


def test_spikes_the_min_replicas_pods_cannot_carry_make_the_pods_bigger() -> None:
    change = change_of(run(_spiky_observations(peak_rise=60.0), hpa={"scaleDown": "Moderate"}))
    before, after = resources(change)
    assert (before[0].cpu_request_millicores, after[0].cpu_request_millicores) == (1000, 1500)
    assert after[0].memory_request_bytes == before[0].memory_request_bytes
    assert change.table_row == "CPU-bound"
    assert "minReplicas 2 x 1000m = 2000m cannot carry a spike while new pods start" in change.reason
    assert change.coupled is not None and change.coupled.setting is Setting.HPA_CPU_TARGET


@pytest.mark.parametrize(("peak_rise", "usage", "note"), [
    (0.0, 500.0, "minReplicas 2 x 1000m = 2000m carry a spike"),
    # 1600m per pod at 30 req/s: ~134m per request/s, the usual 4033m needs 6 pods at 70% of 1000m
    (60.0, 1600.0, "the usual load needs 6 pods > minReplicas 2: the CPU target, not the pod size"),
])
def test_bigger_pods_only_for_spikes_that_land_on_the_min_replicas_floor(
    peak_rise: float, usage: float, note: str
) -> None:
    observations = _spiky_observations(peak_rise=peak_rise, usage=usage)
    decision = run(observations, hpa={"scaleDown": "Moderate"})
    assert decision.change is None or decision.change.edit.setting is not Setting.RESOURCES, decision.reason
    assert note in decision.reason


@pytest.mark.parametrize(("setting", "grows"), [(Setting.RESOURCES, False), (Setting.HPA_MEMORY_TARGET, True)])
def test_a_spike_breach_older_than_the_last_resize_does_not_grow_the_pods_again(setting: Setting, grows: bool) -> None:
    # Written 10 minutes before NOW, after the breach at minute 15 of the 30-minute window.
    if setting is Setting.RESOURCES:
        earlier = _request_raise(verdict=Verdict.KEPT, minutes_ago=10)
    else:
        earlier = ChangeRecord(
            at=b.NOW - b.minutes(10), target="HorizontalPodAutoscaler/api",
            setting=setting, from_value=75, to_value=80, verdict=Verdict.KEPT, verdict_at=b.NOW,
        )
    decision = decide(b.profile(hpa={"scaleDown": "Moderate"}), _spiky_observations(peak_rise=60.0),
                      TuningState(last_change=earlier), b.NOW + b.minutes(10))
    resized = decision.change is not None and decision.change.edit.setting is Setting.RESOURCES
    assert resized is grows, decision.reason


def _calm_spiky_observations(*, week_peak: float | None) -> Observations:
    """``_spiky_observations`` (a largest rise of 60/s over the week) with p95 under the SLO all window: nothing
    breached. The Reliability row's 50% CPU target is live (so no target change comes first), and 350m per pod
    on 2.52 pods on average at 30 req/s is about 29.4m per request/s: a need of ``week_peak`` x 29.4m when the
    week's peak caps it."""
    spiky = _spiky_observations(peak_rise=60.0, usage=350.0)
    live = b.live(hpa=b.hpa(current_replicas=3, desired_replicas=3, cpu_target_percent=50,
                            scale_up=SCALE_UP_ROWS["Aggressive"].to_rules()))
    calm = replace(spiky, latency_p95_seconds=b.series(0.35), live=live)
    if week_peak is None:
        return calm
    return replace(calm, peak_request_rate_per_second=week_peak)


@pytest.mark.parametrize("objective", ["Balanced", "Cost"])
def test_without_a_breach_only_objective_reliability_grows_the_pods_for_spikes(objective: str) -> None:
    decision = run(_calm_spiky_observations(week_peak=150.0), objective=objective, hpa={"scaleDown": "Moderate"})
    assert decision.change is None or decision.change.edit.setting is not Setting.RESOURCES, decision.reason
    assert "sized for spikes" not in decision.reason


def test_objective_reliability_grows_the_min_replicas_pods_before_a_breach() -> None:
    # Uncapped (the week peaked at 150/s), the need is the median 30/s + the rise 60/s: 90/s x 29.4m = 2642m.
    # A rise of 60/s to at most 150/s is at least x1.67, over the x1.5 that keeps the Aggressive row live.
    change = change_of(run(_calm_spiky_observations(week_peak=150.0), objective="Reliability",
                           hpa={"scaleDown": "Moderate"}))
    before, after = resources(change)
    assert (before[0].cpu_request_millicores, after[0].cpu_request_millicores) == (1000, 1500)
    assert change.table_row == "CPU-bound"
    assert change.reason.startswith("objective Reliability: pods sized for spikes before they come")
    assert "minReplicas 2 x 1000m = 2000m cannot carry a spike" in change.reason
    assert "= 90.0/s at 29m per request/s = 2642m" in change.reason


@pytest.mark.parametrize(("week_peak", "grows"), [
    (80.0, True),  # capped at 80/s: 2348m, 2000m is 15% short
    (70.0, False),  # capped at 70/s: 2055m, 2000m is under 3% short, within the 10% counted as noise
])
def test_objective_reliability_sizes_for_no_more_than_the_weeks_peak_and_ignores_a_small_shortfall(
    week_peak: float, grows: bool
) -> None:
    decision = run(_calm_spiky_observations(week_peak=week_peak), objective="Reliability",
                   hpa={"scaleDown": "Moderate"})
    resized = decision.change is not None and decision.change.edit.setting is Setting.RESOURCES
    assert resized is grows, decision.reason
    assert f"capped at the peak {week_peak:.1f}/s" in decision.reason
    if not grows:
        assert "2000m are within 10% of what a spike needs" in decision.reason


def test_objective_reliability_does_not_grow_the_pods_for_spikes_the_scale_up_row_is_leaving() -> None:
    # A rise of 60/s to at most 200/s is only x1.43: the behaviour rule takes the Aggressive row back to
    # Moderate, and pods sized for the spikes it served would be grown for nothing.
    decision = run(_calm_spiky_observations(week_peak=200.0), objective="Reliability", hpa={"scaleDown": "Moderate"})
    assert decision.change is not None and decision.change.edit.setting is Setting.HPA_SCALE_UP, decision.reason


def test_objective_reliability_does_not_size_for_spikes_without_the_weeks_peak_rate() -> None:
    # Pinned, so that no scale-up change (Auto sees no flash crowd without the week's peak) hides the note.
    decision = run(_calm_spiky_observations(week_peak=None), objective="Reliability",
                   hpa={"scaleDown": "Moderate", "scaleUp": "Aggressive"})
    assert decision.change is None or decision.change.edit.setting is not Setting.RESOURCES, decision.reason
    assert ("objective Reliability sizes the pods for spikes, but peak_request_rate_per_second unknown"
            in decision.reason)
    assert "peak_request_rate_per_second" in decision.blocked_by


@pytest.mark.parametrize(("rate_window_seconds", "judged_minutes_ago", "grows"), [
    (120.0, 16.5, False),  # the 2-minute window behind the breach sample (15 minutes ago) starts 17 minutes ago
    (60.0, 16.5, True),  # a 1-minute one starts after the resize
    (60.0, 16.0, False),  # ...unless it starts at the resize itself: its first sample is from before it
])
def test_a_breach_sample_whose_rate_window_reaches_back_before_the_last_resize_does_not_grow_the_pods(
    rate_window_seconds: float, judged_minutes_ago: float, grows: bool
) -> None:
    judged = b.NOW - b.minutes(judged_minutes_ago)
    earlier = _request_raise(verdict=Verdict.KEPT, minutes_ago=judged_minutes_ago).model_copy(
        update={"verdict_at": judged})
    observations = replace(_spiky_observations(peak_rise=60.0), rate_window_seconds=rate_window_seconds)
    decision = decide(b.profile(hpa={"scaleDown": "Moderate"}), observations, TuningState(last_change=earlier),
                      b.NOW + b.minutes(10))
    resized = decision.change is not None and decision.change.edit.setting is Setting.RESOURCES
    assert resized is grows, decision.reason


@pytest.mark.parametrize(("burst_active", "burst_waiting", "grows"), [
    (8.0, 3.0, True),    # a one-minute burst: demand 11 > the pool of 10, clients waited
    (8.0, 0.0, False),   # demand 8 <= 10 and nobody waited
    (10.0, 0.0, False),  # the pool was full, but nobody waited
])
def test_a_pool_outgrown_by_short_bursts_grows_a_tier(burst_active: float, burst_waiting: float, grows: bool) -> None:
    active = [4.0] * b.SAMPLES
    waiting = [0.0] * b.SAMPLES
    active[10], waiting[10] = burst_active, burst_waiting  # 20 minutes ago: never "sustained" in the last 5
    decision = run(b.pool_observations(active=active, waiting=waiting, default=10, reserve=5))
    pool_changes = decision.change is not None and decision.change.edit.setting is Setting.POOL_SIZE
    assert pool_changes is grows, decision.reason
    if grows:
        assert decision.change is not None
        assert decision.change.edit.to_value == PoolSize(default_pool_size=15, reserve_pool_size=8)  # step limit
        assert "Pool demand peak 11 connections per pooler > pool 10 in the window" in decision.change.reason


def test_a_window_without_requests_cuts_no_cpu_however_idle_the_pods() -> None:
    observations = replace(over_provisioned_observations(peak_rise=80.0), request_rate_per_second=b.series(0.0))
    change = change_of(run(observations))
    before, after = resources(change)
    assert after[0].cpu_request_millicores == before[0].cpu_request_millicores
    assert "CPU stays: no requests in the window to size a spike by: no CPU cut" in change.reason


# --- memory per container (DESIGN section 4: "a container is ... memory-bound when ... above 90% of its
# memory request") ---------------------------------------------------------------------------------------

SIDECAR = "sql-proxy"


def two_containers(*, app_mi: float, sidecar_mi: float, peak_app_mi: float | None = None,
                   peak_sidecar_mi: float | None = None, pods: int = 2, **overrides: Any) -> Observations:
    """An app container (1000m/1Gi requests, 2Gi limit) beside a sidecar the template names (100m/2Gi, 4Gi),
    both selected, at these working sets all window (and, over the peak window, the peaks given, else the
    same)."""
    live = b.live(containers=(b.container(), b.container(SIDECAR, cpu_request_millicores=100,
                                                         cpu_limit_millicores=200, memory_request_bytes=2 * b.GI,
                                                         memory_limit_bytes=4 * b.GI)),
                  hpa=b.hpa(current_replicas=pods, desired_replicas=pods))
    signals: dict[str, Any] = {"cpu_usage_millicores_per_pod": b.series(550), **overrides}
    observations = b.observations(
        replicas=b.series(pods), live=live, memory_working_set_bytes_per_pod=b.series((app_mi + sidecar_mi) * b.MI),
        **signals,
    )
    return replace(
        observations,
        memory_working_set_bytes_by_container={"app": b.series(app_mi * b.MI), SIDECAR: b.series(sidecar_mi * b.MI)},
        # Half of each one's CPU request, never throttled: CPU is neither bound nor over-provisioned.
        cpu_usage_millicores_by_container={"app": b.series(500), SIDECAR: b.series(50)},
        cpu_throttled_ratio_by_container={"app": b.series(0.0), SIDECAR: b.series(0.0)},
        peak_memory_working_set_bytes_by_container={"app": (peak_app_mi or app_mi) * b.MI,
                                                    SIDECAR: (peak_sidecar_mi or sidecar_mi) * b.MI},
        peak_cpu_usage_millicores_total=700.0, peak_request_rate_rise_per_second=0.0,
        peak_memory_working_set_bytes_per_pod=((peak_app_mi or app_mi) + (peak_sidecar_mi or sidecar_mi)) * b.MI,
    )


def memory_of(containers: list[ContainerResources]) -> dict[str, int | None]:
    return {c.name: c.memory_request_bytes for c in containers}


def test_a_container_at_its_own_memory_request_gets_the_raise_though_the_pod_total_is_low() -> None:
    # 950Mi of the app's 1Gi (93%), beside an idle sidecar: the pod's 1050Mi is 34% of its 3Gi.
    observations = two_containers(app_mi=950, sidecar_mi=100)
    finding = compute_classification_detail(b.profile(), observations).provisioning
    assert (finding.label, finding.memory_containers) == ("MemoryBound", ("app",))
    assert "app memory peak 93% of request > 90%" in finding.evidence
    _, after = resources(change_of(run(observations)))
    assert memory_of(after) == {"app": 1536 * b.MI, SIDECAR: 2 * b.GI}


def test_an_idle_sidecar_is_cut_and_the_main_container_at_its_own_size_is_not() -> None:
    # The pod is at 26% of its requests, but the app uses 68% of its own: a pod-wide cut would take it to
    # 768Mi, a breath above its 700Mi working set.
    observations = two_containers(app_mi=700, sidecar_mi=100)
    finding = compute_classification_detail(b.profile(), observations).provisioning
    assert (finding.label, finding.memory_containers) == ("Over", (SIDECAR,))
    _, after = resources(change_of(run(observations)))
    assert memory_of(after) == {"app": b.GI, SIDECAR: 1536 * b.MI}


def test_a_container_cut_must_hold_its_own_peak_of_the_peak_window() -> None:
    # The sidecar is idle now but reached 1300Mi this week: 1536Mi x 80% = 1229Mi < 1.25 x 1300Mi.
    decision = run(two_containers(app_mi=300, sidecar_mi=100, peak_sidecar_mi=1300))
    change = change_of(decision)
    _, after = resources(change)
    assert memory_of(after) == {"app": 768 * b.MI, SIDECAR: 2 * b.GI}, change.reason


def test_a_pod_of_several_containers_without_their_own_series_is_not_sized_on_its_total() -> None:
    observations = replace(two_containers(app_mi=700, sidecar_mi=100), memory_working_set_bytes_by_container={})
    finding = compute_classification_detail(b.profile(), observations).provisioning
    assert finding.label == "Unknown"
    assert "memory_working_set_bytes_by_container" in finding.blocked_by
    decision = run(observations)
    assert decision.change is None or decision.change.edit.setting is not Setting.RESOURCES, decision.reason


def test_a_memory_raise_does_not_wait_for_off_peak_while_one_container_nears_its_own_limit() -> None:
    # The app at 1900Mi of its 2Gi limit (95%) is about to be killed; the pod's 2000Mi is a third of its 6Gi.
    observations = two_containers(app_mi=1900, sidecar_mi=100, pods=4, request_rate_per_second=b.series(81.0),
                                  cpu_usage_millicores_per_pod=b.series(600), peak_request_rate_per_second=100.0)
    decision = decide(b.profile(), observations, _written(2.0), b.NOW)
    _, after = resources(change_of(decision))
    assert memory_of(after) == {"app": 1536 * b.MI, SIDECAR: 2 * b.GI}
    # Far from its limit (950Mi, still 93% of its request), the same raise waits for off-peak at this busy hour.
    calm = replace(observations, memory_working_set_bytes_by_container={"app": b.series(950 * b.MI),
                                                                        SIDECAR: b.series(100 * b.MI)})
    assert "resources change waits for off-peak" in decide(b.profile(), calm, _written(2.0), b.NOW).reason


def test_a_container_throttled_on_its_own_limit_gets_the_cpu_raise_though_the_pod_is_not() -> None:
    # The app is throttled in 30% of its CFS periods; the idle sidecar in none: summed over the pod's periods
    # that is 15%, and the raise would go to both.
    observations = replace(two_containers(app_mi=300, sidecar_mi=100),
                           cpu_throttled_ratio_by_container={"app": b.series(0.3), SIDECAR: b.series(0.0)})
    finding = compute_classification_detail(b.profile(), observations).provisioning
    assert (finding.label, finding.cpu_containers) == ("CpuBound", ("app",))
    assert "app throttled 30% of CFS periods > 10%" in finding.evidence
    _, after = resources(change_of(run(observations)))
    assert {c.name: c.cpu_request_millicores for c in after} == {"app": 1500, SIDECAR: 100}


def test_only_the_idle_container_s_cpu_is_cut() -> None:
    # At the floor, the app uses 45% of its CPU request and the sidecar 5%: the pod's 455m is 41% of 1100m.
    observations = replace(two_containers(app_mi=500, sidecar_mi=1000, cpu_usage_millicores_per_pod=b.series(455)),
                           cpu_usage_millicores_by_container={"app": b.series(450), SIDECAR: b.series(5)})
    finding = compute_classification_detail(b.profile(), observations).provisioning
    assert (finding.label, finding.cpu_containers) == ("Over", (SIDECAR,))
    assert "under 40% (sql-proxy CPU) with the SLO met all window" in finding.evidence
    _, after = resources(change_of(run(observations)))
    assert {c.name: c.cpu_request_millicores for c in after} == {"app": 1000, SIDECAR: 75}


def test_a_cut_of_one_container_does_not_hold_back_a_raise_of_another() -> None:
    # The sidecar's memory was cut 5 hours ago; now the app is at 93% of its own request.
    cut = Edit(setting=Setting.RESOURCES,
               from_value=[b.container(SIDECAR, memory_request_bytes=2 * b.GI)],
               to_value=[b.container(SIDECAR, memory_request_bytes=1536 * b.MI)])
    state = TuningState(last_change=_kept(cut, minutes_ago=300, target="Deployment/api"))
    decision = decide(b.profile(), two_containers(app_mi=950, sidecar_mi=100), state, b.NOW)
    _, after = resources(change_of(decision))
    assert memory_of(after) == {"app": 1536 * b.MI, SIDECAR: 2 * b.GI}


def test_oom_kills_let_a_memory_raise_reverse_a_recent_cut() -> None:
    cut = Edit(setting=Setting.RESOURCES, from_value=[b.container()],
               to_value=[b.container(memory_request_bytes=768 * b.MI)])
    state = TuningState(last_change=_kept(cut, minutes_ago=300, target="Deployment/api"))
    live = b.live(containers=(b.container(memory_request_bytes=768 * b.MI),), oom_kills_in_window=2)
    decision = decide(b.profile(), b.observations(live=live), state, b.NOW)
    _, after = resources(change_of(decision))
    assert after[0].memory_request_bytes == 1152 * b.MI
    # Without kills, the same raise (the working set at 95% of the cut request) waits out the hold.
    calm = b.observations(live=replace(live, oom_kills_in_window=0),
                          memory_working_set_bytes_per_pod=b.series(730 * b.MI))
    assert "held 24h against flapping" in decide(b.profile(), calm, state, b.NOW).reason


def test_a_sidecar_cut_must_keep_the_pod_under_the_hpa_memory_target() -> None:
    # The sidecar (34% of its request) holds its own peak after the cut, but the pod's 2560Mi x 80% = 2048Mi
    # would not hold 1.25 x the pod's peak of 1700Mi: the HPA compares the pod's total with its target.
    observations = replace(two_containers(app_mi=500, sidecar_mi=700),
                           peak_memory_working_set_bytes_per_pod=1700.0 * b.MI)
    decision = run(observations)
    assert decision.change is None or decision.change.edit.setting is not Setting.RESOURCES, decision.reason
    assert "the pod's 2560Mi x the memory target 80% would not hold 1.25 x its 168h working-set peak 1700Mi" in (
        decision.reason)


def test_no_memory_cut_while_the_pod_s_memory_pattern_is_unknown() -> None:
    # The containers' series came back, the pod's did not: a leak could hide behind it.
    observations = replace(two_containers(app_mi=300, sidecar_mi=100),
                           memory_working_set_bytes_per_pod=b.unknown("prometheus query failed: timeout"))
    finding = compute_classification_detail(b.profile(), observations).provisioning
    assert not finding.memory_over
    assert "memory left alone: memory pattern unknown" in finding.evidence


def test_a_container_leaking_against_its_own_request_is_not_cut_though_the_pod_reads_stable() -> None:
    # The app rises 200 -> 260Mi over the window, 11.7% of its own 1Gi an hour; against the pod's 3Gi that
    # is under the 5%/h that makes the pod Growing.
    observations = replace(two_containers(app_mi=200, sidecar_mi=100),
                           memory_working_set_bytes_by_container={"app": b.series(b.ramp(200 * b.MI, 260 * b.MI)),
                                                                  SIDECAR: b.series(100 * b.MI)})
    detail = compute_classification_detail(b.profile(), observations)
    assert detail.memory.label != "Growing"
    assert detail.provisioning.memory_containers == (SIDECAR,)
    assert "app memory left alone: growing" in detail.provisioning.evidence


def test_a_kill_of_one_container_raises_that_container_only_when_the_reader_tells_them_apart() -> None:
    live = replace(two_containers(app_mi=300, sidecar_mi=100).live, oom_kills_in_window=2,
                   oom_kills_by_container={"app": 0, SIDECAR: 2})
    observations = replace(two_containers(app_mi=300, sidecar_mi=100), live=live)
    finding = compute_classification_detail(b.profile(), observations).provisioning
    assert (finding.label, finding.memory_containers) == ("MemoryBound", (SIDECAR,))
    assert "sql-proxy 2 OOMKilled in the window" in finding.evidence
    _, after = resources(change_of(run(observations)))
    assert memory_of(after) == {"app": b.GI, SIDECAR: 3 * b.GI}
    # A kill of a container the profile does not size raises nothing, and cuts no memory either.
    only_app = compute_classification_detail(b.profile(resources={"containers": ["app"]}), observations).provisioning
    assert not only_app.memory_bound and not only_app.memory_over


def test_a_saturated_hpa_grows_every_selected_container_though_one_of_them_is_throttled() -> None:
    # At maxReplicas 10 with CPU at 90% of a 70% target, the pods are too small: the sidecar being throttled
    # too is no reason to grow only it (+50 m of a 1100 m pod).
    observations = two_containers(app_mi=300, sidecar_mi=100, pods=10, cpu_usage_millicores_per_pod=b.series(990))
    observations = replace(
        observations, live=replace(observations.live, hpa=b.hpa(current_replicas=10, desired_replicas=10)),
        replicas=b.series(10), cpu_usage_millicores_by_container={"app": b.series(900), SIDECAR: b.series(90)},
        cpu_throttled_ratio_by_container={"app": b.series(0.0), SIDECAR: b.series(0.3)})
    _, after = resources(change_of(run(observations, hpa={"maxReplicasCeiling": 10})))
    assert {c.name: c.cpu_request_millicores for c in after} == {"app": 1500, SIDECAR: 150}


def test_a_sidecar_cpu_cut_with_its_coupled_target_does_not_hold_back_the_main_container_s_raise() -> None:
    sidecar = {"cpu_limit_millicores": 200, "memory_request_bytes": 2 * b.GI, "memory_limit_bytes": 4 * b.GI}
    cut_sidecar = b.container(SIDECAR, **{**sidecar, "cpu_request_millicores": 75, "cpu_limit_millicores": 150})
    cut = Edit(setting=Setting.RESOURCES,
               from_value=[b.container(), b.container(SIDECAR, cpu_request_millicores=100, **sidecar)],
               to_value=[b.container(), cut_sidecar])
    record = _kept(cut, minutes_ago=300, target="Deployment/api").model_copy(
        update={"coupled": Edit(setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=71)})
    observations = two_containers(app_mi=300, sidecar_mi=100)
    observations = replace(
        observations, live=replace(observations.live, containers=(b.container(), cut_sidecar),
                                   hpa=b.hpa(current_replicas=2, desired_replicas=2, cpu_target_percent=71)),
        cpu_usage_millicores_by_container={"app": b.series(950), SIDECAR: b.series(40)},
        cpu_throttled_ratio_by_container={"app": b.series(0.3), SIDECAR: b.series(0.0)})
    decision = decide(b.profile(), observations, TuningState(last_change=record), b.NOW)
    _, after = resources(change_of(decision))
    assert {c.name: c.cpu_request_millicores for c in after} == {"app": 1500, SIDECAR: 75}


def test_a_kill_of_another_container_does_not_let_a_raise_reverse_a_recent_cut() -> None:
    # The app's memory was cut 5 hours ago and is at 93% of its request again; only the sidecar was killed.
    cut = Edit(setting=Setting.RESOURCES,
               from_value=[b.container(memory_request_bytes=1365 * b.MI), b.container(SIDECAR)],
               to_value=[b.container(), b.container(SIDECAR)])
    state = TuningState(last_change=_kept(cut, minutes_ago=300, target="Deployment/api"))
    observations = two_containers(app_mi=950, sidecar_mi=100)
    for killed, raised in (({"app": 0, SIDECAR: 1}, False), ({"app": 1, SIDECAR: 0}, True)):
        live = replace(observations.live, oom_kills_in_window=1, oom_kills_by_container=killed)
        decision = decide(b.profile(resources={"containers": ["app"]}), replace(observations, live=live), state, b.NOW)
        changed = decision.change is not None and decision.change.edit.setting is Setting.RESOURCES
        assert changed is raised, decision.reason


def test_a_raise_with_its_coupled_target_is_not_held_by_a_target_move_an_earlier_raise_already_went_past() -> None:
    # 2 h ago the target was raised on its own (60 -> 70); 1 h ago a CPU raise lowered it, coupled (70 -> 60).
    # A second CPU raise lowering it again goes on in the latest move's direction: it reverses nothing.
    raised_target = _kept(_cpu_target_edit(60, 70), minutes_ago=120)
    first_raise = _kept(Edit(setting=Setting.RESOURCES, from_value=[b.container()],
                             to_value=[b.container(cpu_request_millicores=1500, cpu_limit_millicores=3000)]),
                        minutes_ago=60, target="Deployment/api").model_copy(
        update={"coupled": _cpu_target_edit(70, 60)})
    live = b.live(containers=(b.container(cpu_request_millicores=1500, cpu_limit_millicores=3000),),
                  hpa=b.hpa(cpu_target_percent=60))
    observations = b.observations(cpu_throttled_ratio=b.series(0.3), live=live)
    state = TuningState(history=[raised_target], last_change=first_raise)
    change = change_of(decide(b.profile(), observations, state, b.NOW))
    _, after = resources(change)
    assert after[0].cpu_request_millicores == 2250
    assert change.coupled is not None and change.coupled.to_value == 50


def _cut_app_memory_and_sidecar_cpu(*, minutes_ago: float) -> tuple[ChangeRecord, tuple[ContainerResources, ...]]:
    """A kept Over change ``minutes_ago``: the app's memory 1365Mi -> 1Gi and the sidecar's CPU 100m -> 75m."""
    sidecar = {"cpu_limit_millicores": 200, "memory_request_bytes": 2 * b.GI, "memory_limit_bytes": 4 * b.GI}
    after = (b.container(), b.container(SIDECAR, **{**sidecar, "cpu_request_millicores": 75,
                                                    "cpu_limit_millicores": 150}))
    cut = Edit(setting=Setting.RESOURCES,
               from_value=[b.container(memory_request_bytes=1365 * b.MI),
                           b.container(SIDECAR, cpu_request_millicores=100, **sidecar)],
               to_value=list(after))
    return _kept(cut, minutes_ago=minutes_ago, target="Deployment/api"), after


def test_a_killed_container_s_memory_goes_alone_when_the_rest_of_the_raise_is_held() -> None:
    # The app is OOMKilled after its cut and the sidecar throttled after its own: raising the sidecar's CPU
    # back is held for the day, but the app must not crash-loop that long.
    record, containers = _cut_app_memory_and_sidecar_cpu(minutes_ago=300)
    observations = two_containers(app_mi=300, sidecar_mi=60)
    live = replace(observations.live, containers=containers, oom_kills_in_window=2,
                   oom_kills_by_container={"app": 2, SIDECAR: 0})
    observations = replace(observations, live=live,
                           cpu_throttled_ratio_by_container={"app": b.series(0.0), SIDECAR: b.series(0.3)})
    _, both = resources(change_of(run(observations)))  # without the record: the Under row raises both
    assert {c.name: c.cpu_request_millicores for c in both} == {"app": 1000, SIDECAR: 112}
    # The app's memory may come back (it is OOMKilled); that does not carry the sidecar's CPU, cut in the same
    # change and not short: the Under raise is held, and the memory goes alone.
    decision = decide(b.profile(), observations, TuningState(last_change=record), b.NOW)
    _, after = resources(change_of(decision))
    assert {c.name: (c.cpu_request_millicores, c.memory_request_bytes) for c in after} == {
        "app": (1000, 1536 * b.MI), SIDECAR: (75, 2 * b.GI)}
    assert "the memory alone, the CPU move held" in decision.reason


@pytest.mark.parametrize(("usage_millicores", "grown"), [
    (600.0, {"app": 1500, SIDECAR: 100}),  # under the target at maxReplicas: only the throttled app's CPU grows
    (990.0, {"app": 1500, SIDECAR: 150}),  # saturated at maxReplicas: the pods are too small, every one grows
])
def test_an_slo_emergency_at_max_replicas_grows_the_bound_containers_or_all_when_saturated(
    usage_millicores: float, grown: dict[str, int]
) -> None:
    observations = two_containers(app_mi=300, sidecar_mi=100, pods=10, latency_p95_seconds=b.series(1.2),
                                  cpu_usage_millicores_per_pod=b.series(usage_millicores))
    live = replace(observations.live, hpa=b.hpa(current_replicas=10, desired_replicas=10),
                   oom_kills_in_window=1, oom_kills_by_container={"app": 1, SIDECAR: 0})
    observations = replace(observations, live=live, replicas=b.series(10),
                           cpu_throttled_ratio_by_container={"app": b.series(0.3), SIDECAR: b.series(0.0)})
    change = change_of(run(observations))
    assert change.emergency
    _, after = resources(change)
    assert {c.name: c.cpu_request_millicores for c in after} == grown
    assert memory_of(after) == {"app": 1536 * b.MI, SIDECAR: 2 * b.GI}  # the killed one's memory only


# --- mutation audit of the spike headroom, the under-provisioning at maxReplicas and the cut checks ------------
# Extra import for the top of test_rules.py (the rest is imported there already):
#     from perfpilot.tuning.rules.behaviour import is_slo_breached_while_scaling_up


def _breached_spiky_observations(*, week_peak: float) -> Observations:
    """``_calm_spiky_observations`` (Reliability's 50% target live, about 29.4m per request/s) with the breach of
    ``_spiky_observations`` back at minute 15: the SLO was breached while the HPA scaled up."""
    calm = _calm_spiky_observations(week_peak=week_peak)
    return replace(calm, latency_p95_seconds=_spiky_observations(peak_rise=60.0).latency_p95_seconds)


@pytest.mark.parametrize("objective", ["Balanced", "Reliability"])
def test_a_breach_sizes_the_pods_for_the_whole_rise_uncapped_and_without_the_shortfall_allowance(
    objective: str
) -> None:
    # The week peaked at 70/s: capped (the forecast's rule), 70/s x 29.4m = 2055m would leave 2000m within the
    # 10% allowance. A breach is no forecast: the need is the median 30/s + the rise 60/s = 90/s, 2642m.
    decision = run(_breached_spiky_observations(week_peak=70.0), objective=objective, hpa={"scaleDown": "Moderate"})
    change = change_of(decision)
    assert change.edit.setting is Setting.RESOURCES and change.table_row == "CPU-bound", decision.reason
    assert change.reason.startswith("SLO 500ms breached while scaling up with the Aggressive scale-up row live")
    assert "= 90.0/s at 29m per request/s = 2642m" in change.reason
    assert "capped at the peak" not in change.reason


def test_min_replicas_pods_that_carry_exactly_the_spike_need_are_not_grown() -> None:
    # 310m per pod on 2.52 pods at 30 req/s is 26m per request/s: 90/s needs exactly 2340m, what 2 x 1170m carry.
    live = b.live(containers=(b.container(cpu_request_millicores=1170),),
                  hpa=b.hpa(current_replicas=3, desired_replicas=3, scale_up=SCALE_UP_ROWS["Aggressive"].to_rules()))
    observations = replace(_spiky_observations(peak_rise=60.0, usage=310.0), live=live)
    decision = run(observations, hpa={"scaleDown": "Moderate"})
    assert decision.change is None or decision.change.table_row != "CPU-bound", decision.reason
    assert "minReplicas 2 x 1170m = 2340m carry a spike" in decision.reason


def test_objective_reliability_says_which_shortfall_it_ignores() -> None:
    decision = run(_calm_spiky_observations(week_peak=150.0), objective="Reliability", hpa={"scaleDown": "Moderate"})
    assert "(the Aggressive scale-up row live, a shortfall over 10% counted)" in change_of(decision).reason


def test_a_spike_breach_without_the_aggressive_row_live_writes_the_row_not_bigger_pods() -> None:
    spiky = _spiky_observations(peak_rise=60.0)
    observations = replace(spiky, live=replace(spiky.live, hpa=b.hpa(current_replicas=3, desired_replicas=3)))
    decision = run(observations, hpa={"scaleDown": "Moderate"})
    change = change_of(decision)
    assert (change.edit.setting, change.table_row) == (Setting.HPA_SCALE_UP, "Aggressive"), decision.reason


def test_objective_reliability_without_a_breach_does_not_say_the_slo_was_breached() -> None:
    calm = _calm_spiky_observations(week_peak=150.0)
    observations = replace(calm, live=replace(calm.live, hpa=replace(calm.live.hpa, scale_up=b.MODERATE_UP)))
    decision = run(observations, objective="Reliability", hpa={"scaleDown": "Moderate"})
    assert "SLO breached while scaling up" not in decision.reason


def test_an_hpa_without_a_cpu_target_gets_no_spike_headroom_resize() -> None:
    # A memory-only HPA: the spike check counts pods at a CPU target there is none of.
    spiky = _spiky_observations(peak_rise=60.0)
    observations = replace(spiky, live=replace(spiky.live, hpa=replace(spiky.live.hpa, cpu_target_percent=None)))
    decision = run(observations, hpa={"scaleDown": "Moderate"})
    assert decision.change is None or decision.change.table_row != "CPU-bound", decision.reason


def test_pods_without_a_cpu_request_get_no_spike_headroom_resize() -> None:
    spiky = _spiky_observations(peak_rise=60.0)
    observations = replace(spiky, live=replace(spiky.live, containers=(b.container(cpu_request_millicores=None,
                                                                                    cpu_limit_millicores=None),)))
    decision = run(observations, hpa={"scaleDown": "Moderate"})
    assert decision.change is None or decision.change.edit.setting is not Setting.RESOURCES, decision.reason


def test_a_spike_breach_grows_no_pods_while_provisioning_is_unknown() -> None:
    observations = replace(_spiky_observations(peak_rise=60.0), memory_working_set_bytes_per_pod=b.unknown())
    decision = run(observations, hpa={"scaleDown": "Moderate"})
    assert decision.change is None or decision.change.edit.setting is not Setting.RESOURCES, decision.reason
    assert "provisioning unknown" in decision.reason


def test_a_spike_breach_before_the_last_resizes_verdict_does_not_grow_the_pods_again() -> None:
    # Written an hour before NOW, judged 10 minutes before NOW: after the breach at minute 15 of the window.
    earlier = _request_raise(verdict=Verdict.KEPT, minutes_ago=60).model_copy(
        update={"verdict_at": b.NOW - b.minutes(10)})
    decision = decide(b.profile(hpa={"scaleDown": "Moderate"}), _spiky_observations(peak_rise=60.0),
                      TuningState(last_change=earlier), b.NOW)
    assert decision.change is None or decision.change.edit.setting is not Setting.RESOURCES, decision.reason


def test_the_last_resize_not_an_older_one_decides_which_spike_breach_counts() -> None:
    older = _request_raise(verdict=Verdict.KEPT, minutes_ago=600)
    newer = _request_raise(verdict=Verdict.KEPT, minutes_ago=10).model_copy(update={"verdict_at": b.NOW})
    decision = decide(b.profile(hpa={"scaleDown": "Moderate"}), _spiky_observations(peak_rise=60.0),
                      TuningState(last_change=newer, history=[older]), b.NOW + b.minutes(10))
    assert decision.change is None or decision.change.edit.setting is not Setting.RESOURCES, decision.reason


def test_memory_bound_at_max_replicas_equal_to_the_ceiling_takes_the_under_row_in_one_rollout() -> None:
    observations = b.observations(
        cpu_usage_millicores_per_pod=b.series(800), replicas=b.series(10),
        live=b.live(oom_kills_in_window=1, hpa=b.hpa(current_replicas=10, desired_replicas=10)),
    )
    change = change_of(run(observations, hpa={"maxReplicasCeiling": 10}))
    _, after = resources(change)
    assert (after[0].cpu_request_millicores, after[0].memory_request_bytes) == (1500, 1536 * b.MI)
    assert change.table_row == "Under-provisioned" and "one rollout" in change.reason


@pytest.mark.parametrize("latency", [
    b.series(0.5),  # at the SLO, not over it
    b.series([0.35] * (b.SAMPLES - 1) + [0.9]),  # one slow sample: the recent mean 0.44s is under the SLO
])
def test_max_replicas_is_not_raised_for_a_recent_p95_mean_not_over_the_slo(latency: Series) -> None:
    # CPU 600m of 1000m is under the 70% target: not saturated, so only a breach would call for more replicas.
    observations = b.observations(
        latency_p95_seconds=latency, cpu_usage_millicores_per_pod=b.series(600), replicas=b.series(10),
        live=b.live(hpa=b.hpa(current_replicas=10, desired_replicas=10)),
    )
    decision = run(observations, hpa={"maxReplicasCeiling": 12})
    assert decision.change is None or decision.change.edit.setting is not Setting.HPA_MAX_REPLICAS, decision.reason


def test_a_saturated_hpa_without_ceiling_room_grows_no_pods_while_provisioning_is_unknown() -> None:
    observations = b.observations(
        cpu_usage_millicores_per_pod=b.series(800), replicas=b.series(10),
        memory_working_set_bytes_per_pod=b.unknown(),
        live=b.live(hpa=b.hpa(current_replicas=10, desired_replicas=10)),
    )
    decision = run(observations)
    assert decision.change is None or decision.change.edit.setting is not Setting.RESOURCES, decision.reason
    assert "provisioning unknown" in decision.reason


def test_a_cpu_cut_counts_the_capacity_at_the_coupled_cpu_target() -> None:
    # Live 60%, coupled up to the Steady row's 70%: 10 x 750m x 70% = 5250m covers 1.25 x 4000m (at 60%, 4500m
    # would not).
    observations = over_provisioned_observations(peak_cpu=4000.0)
    observations = replace(observations, live=replace(observations.live, hpa=b.hpa(current_replicas=2,
                                                                                    cpu_target_percent=60)))
    change = change_of(run(observations))
    _, after = resources(change)
    assert after[0].cpu_request_millicores == 750, change.reason
    assert change.coupled is not None and change.coupled.to_value == 70


def test_without_an_hpa_a_cpu_cut_counts_the_windows_largest_replica_count() -> None:
    # 4 pods most of the window, 2 now: 4 x 750m = 3000m covers 1.25 x 2000m (2 x 750m would not).
    observations = replace(over_provisioned_observations(peak_cpu=2000.0),
                           replicas=b.series([4.0] * (b.SAMPLES - 1) + [2.0]), live=b.live(hpa=None))
    change = change_of(run(observations))
    _, after = resources(change)
    assert after[0].cpu_request_millicores == 750, change.reason


def test_a_cpu_cut_is_checked_against_the_pods_running_when_fewer_than_min_replicas() -> None:
    # minReplicas 4, but 2 pods run at the end of the window: 2 x 750m = 1500m cannot carry (100 + 200) req/s x
    # 6m per request/s = 1800m, though 4 such pods could.
    observations = over_provisioned_observations(peak_rise=200.0)
    observations = replace(observations, live=replace(observations.live, hpa=b.hpa(current_replicas=2,
                                                                                    min_replicas=4)),
                           replicas=b.series([4.0] * (b.SAMPLES - 1) + [2.0]))
    change = change_of(run(observations))
    before, after = resources(change)
    assert after[0].cpu_request_millicores == before[0].cpu_request_millicores
    assert "CPU stays: 2 pods x 750m = 1500m would not carry a spike" in change.reason


def test_an_hpa_one_below_max_replicas_is_not_given_more_max_replicas_for_a_breach() -> None:
    # 9 of 10 pods: the HPA can still add one, so neither the breach nor the CPU calls for more maxReplicas.
    observations = b.observations(
        latency_p95_seconds=b.series(0.7), cpu_usage_millicores_per_pod=b.series(800), replicas=b.series(9),
        live=b.live(hpa=b.hpa(current_replicas=9, desired_replicas=9)),
    )
    decision = run(observations, hpa={"maxReplicasCeiling": 12})
    assert decision.change is None or decision.change.edit.setting is not Setting.HPA_MAX_REPLICAS, decision.reason


def test_p95_at_the_slo_while_scaling_up_is_not_a_breach() -> None:
    replicas = b.series([2.0] * 15 + [3.0] * (b.SAMPLES - 15))
    at_slo = b.series([0.35] * 15 + [0.5] + [0.35] * (b.SAMPLES - 16))
    assert not is_slo_breached_while_scaling_up(at_slo, replicas, 0.5)
    assert is_slo_breached_while_scaling_up(at_slo, replicas, 0.49)


def test_a_breach_while_scaling_back_up_after_a_scale_down_counts() -> None:
    # 3 pods, down to 2, back up to 3 at minute 15 with p95 over the SLO: the step up is from 2, not the first 3.
    replicas = b.series([3.0] * 10 + [2.0] * 5 + [3.0] * (b.SAMPLES - 15))
    latency = b.series([0.35] * 15 + [0.6] + [0.35] * (b.SAMPLES - 16))
    assert is_slo_breached_while_scaling_up(latency, replicas, 0.5)


def test_a_scale_up_without_a_p95_sample_at_its_moment_is_not_a_breach() -> None:
    # p95 has a gap exactly where the replicas went up: nothing says users waited then.
    replicas = b.series([2.0] * 15 + [3.0] * (b.SAMPLES - 15))
    latency = b.series([0.35] * b.SAMPLES)
    gappy = Series(tuple(t for i, t in enumerate(latency.timestamps_seconds) if i != 15),
                   tuple(v for i, v in enumerate(latency.values) if i != 15))
    assert not is_slo_breached_while_scaling_up(gappy, replicas, 0.3)
