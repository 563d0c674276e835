"""Edges of the rules a mutation audit found unguarded: each test pins one comparison or filter of a rule."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import tuning_builders as b

from perfpilot.api.status import Setting
from perfpilot.tuning.classify import compute_classification_detail
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.observations import Observations
from perfpilot.tuning.rules import RuleContext, RuleOutcome
from perfpilot.tuning.rules.behaviour import compute_scale_down_row
from perfpilot.tuning.rules.emergency import decide_slo_emergency
from perfpilot.tuning.rules.provisioning import decide_under_provisioning
from perfpilot.tuning.rules.spikes import check_cut_pods_carry_the_largest_rise, compute_spike_need
from perfpilot.tuning.rules.targets import decide_hpa_targets
from perfpilot.tuning.tables import SCALE_DOWN_ROWS
from perfpilot.tuning.thresholds import DEFAULT_THRESHOLDS

EMERGENCY_LATENCY = b.series(1.2)  # every sample above twice the 500ms SLO


def context(observations: Observations, **profile_overrides: Any) -> RuleContext:
    """The context decide() gives the rules, with no records (an empty TuningState)."""
    profile = b.profile(**profile_overrides)
    return RuleContext(
        profile=profile, observations=observations, thresholds=DEFAULT_THRESHOLDS, now_seconds=b.NOW.timestamp(),
        detail=compute_classification_detail(profile, observations, thresholds=DEFAULT_THRESHOLDS),
    )


def changes_of(outcomes: list[RuleOutcome], setting: Setting) -> list[ProposedChange]:
    return [outcome.change for outcome in outcomes if outcome.change is not None and outcome.change.edit.setting
            is setting]


def notes_of(outcomes: list[RuleOutcome]) -> str:
    return "\n".join(outcome.note for outcome in outcomes if outcome.note)


# --- the SLO emergency ---------------------------------------------------------------------------------


def test_the_emergency_writes_aggressive_scale_up_only_where_it_adds_pods_at_least_as_fast_as_the_live_rules(
) -> None:
    # From minReplicas 2 the Kubernetes default Max(+4 pods, +100%) per 15s reaches 6 where Aggressive's +100%
    # reaches 4: writing it in an emergency would slow the very scale-up the emergency needs.
    observations = b.observations(latency_p95_seconds=EMERGENCY_LATENCY, live=b.live(hpa=b.hpa(scale_up=None)))
    outcomes = list(decide_slo_emergency(context(observations)))
    assert changes_of(outcomes, Setting.HPA_SCALE_UP) == [], notes_of(outcomes)
    # Over the builders' Moderate (+50% per 30s) it is faster at every count, and the emergency writes it.
    moderate = b.observations(latency_p95_seconds=EMERGENCY_LATENCY)
    faster = changes_of(list(decide_slo_emergency(context(moderate))), Setting.HPA_SCALE_UP)
    assert [change.table_row for change in faster] == ["Aggressive"]


def test_the_emergency_raises_no_cpu_while_the_hpa_can_still_add_pods() -> None:
    # Throttled pods with the HPA at 4 of 10: more pods (the lower CPU target) are the cheaper capacity, and a
    # CPU raise would cost a rollout in the middle of the emergency.
    observations = b.observations(latency_p95_seconds=EMERGENCY_LATENCY, cpu_throttled_ratio=b.series(0.3))
    ctx = context(observations)
    assert ctx.detail.provisioning.cpu_bound
    outcomes = list(decide_slo_emergency(ctx))
    assert changes_of(outcomes, Setting.RESOURCES) == []
    assert "CPU-bound but the HPA at 4 < maxReplicas 10 can still add pods: no CPU raise" in notes_of(outcomes)


# --- spikes ----------------------------------------------------------------------------------------------


def test_a_cpu_cut_is_checked_against_the_min_replicas_pods_not_the_pods_running_now() -> None:
    # 4 pods at 700m carry 100 req/s (28m per request/s): 2800m. Four 1000m pods would carry it, but the HPA may
    # go back to its 2 pods, and a spike landing there must still be carried by them.
    observations = replace(b.observations(), peak_request_rate_rise_per_second=0.0)
    verdict = check_cut_pods_carry_the_largest_rise(context(observations), new_pod_millicores=1000)
    assert verdict is not None
    assert verdict.startswith("2 pods x 1000m = 2000m would not carry a spike")


def test_the_windows_peak_rate_is_the_least_spike_need_whatever_the_largest_rise() -> None:
    # A peak of 200 req/s in the window has been served already: the pods must carry it even when the
    # recorded rise over the peak window (10/s) is smaller than the peak's distance from the median (100/s).
    rate = b.series([100.0] * (b.SAMPLES - 1) + [200.0])
    observations = replace(b.observations(request_rate_per_second=rate), peak_request_rate_rise_per_second=10.0)
    need = compute_spike_need(observations, pods=2)
    assert need.usual_millicores > 0
    assert need.needed_millicores == pytest.approx(2 * need.usual_millicores)  # the peak is twice the median
    assert "= 200.0/s at" in need.evidence


# --- under-provisioning at maxReplicas ---------------------------------------------------------------------


def test_a_saturated_hpa_whose_ceiling_equals_max_replicas_gets_bigger_pods() -> None:
    # maxReplicasCeiling 10 = maxReplicas 10 leaves no replica to add: the pods are what is short, so the
    # CPU-bound row grows them rather than the rule stopping at "the ceiling allows no more".
    observations = b.observations(
        cpu_usage_millicores_per_pod=b.series(900), replicas=b.series(10),  # 90% > 77% (70% + tolerance)
        live=b.live(hpa=b.hpa(current_replicas=10, desired_replicas=10)),
    )
    outcomes = list(decide_under_provisioning(context(observations, hpa={"maxReplicasCeiling": 10})))
    assert changes_of(outcomes, Setting.HPA_MAX_REPLICAS) == []
    raises = changes_of(outcomes, Setting.RESOURCES)
    assert len(raises) == 1, notes_of(outcomes)
    assert "no maxReplicasCeiling room: pods too small" in raises[0].reason
    after = raises[0].edit.to_value
    assert isinstance(after, list) and after[0].cpu_request_millicores == 1500


# --- HPA targets ---------------------------------------------------------------------------------------------


def test_a_cpu_target_is_not_raised_on_a_p95_series_that_covers_only_the_end_of_the_window() -> None:
    # 10 minutes of low p95 say nothing of the 20 before them: a raise takes capacity away, so it needs the
    # whole window to have been low.
    observations = b.observations(latency_p95_seconds=b.series(0.2, count=11),
                                  live=b.live(hpa=b.hpa(cpu_target_percent=60)))
    outcomes = list(decide_hpa_targets(context(observations)))
    assert changes_of(outcomes, Setting.HPA_CPU_TARGET) == [], notes_of(outcomes)
    assert "raising needs p95 under 300ms" in notes_of(outcomes)
    # The same low p95 over the whole window does raise it: the coverage alone held it.
    covered = b.observations(latency_p95_seconds=b.series(0.2), live=b.live(hpa=b.hpa(cpu_target_percent=60)))
    assert changes_of(list(decide_hpa_targets(context(covered))), Setting.HPA_CPU_TARGET)


def test_the_memory_target_is_not_raised_while_p95_breached_the_slo_in_the_window() -> None:
    # A higher memory target means fewer pods; with one p95 sample over the SLO the service had no capacity
    # to give away.
    latency = [0.35] * (b.SAMPLES - 1) + [0.6]
    observations = b.observations(latency_p95_seconds=b.series(latency),
                                  live=b.live(hpa=b.hpa(memory_target_percent=70)))
    outcomes = list(decide_hpa_targets(context(observations)))
    assert changes_of(outcomes, Setting.HPA_MEMORY_TARGET) == [], notes_of(outcomes)
    assert "raising needs the SLO met all window (peak 600ms)" in notes_of(outcomes)
    met = b.observations(live=b.live(hpa=b.hpa(memory_target_percent=70)))
    assert changes_of(list(decide_hpa_targets(context(met))), Setting.HPA_MEMORY_TARGET)


# --- behaviour rows ---------------------------------------------------------------------------------------------


def _two_reversals() -> list[float]:
    # up, down, up: two reversals, under flapping_reversals (3) and above flapping_leave_reversals (1)
    return [4.0] * 8 + [5.0] * 8 + [4.0] * 8 + [5.0] * (b.SAMPLES - 24)


def test_the_slow_scale_down_row_is_kept_until_the_reversals_fall_to_the_leave_threshold() -> None:
    # Hysteresis: two reversals would not enter Slow, but they keep it, so a count wobbling around the
    # threshold does not flip the row every cycle.
    slow = SCALE_DOWN_ROWS["Slow"]
    observations = b.observations(replicas=b.series(_two_reversals()),
                                  live=b.live(hpa=b.hpa(scale_down=slow.to_rules())))
    row, why = compute_scale_down_row(context(observations))
    assert row is slow, why
    assert "2 reversals >= 2 to stay Slow" in str(why)
    entering = b.observations(replicas=b.series(_two_reversals()))
    row, why = compute_scale_down_row(context(entering))
    assert row is SCALE_DOWN_ROWS["Moderate"], why
