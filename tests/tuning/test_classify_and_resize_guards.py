"""Edges of the classification and of the resources rows a mutation audit found unguarded: each test pins one
comparison, statistic, filter or bound that docs/tuning-tables.md states."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import tuning_builders as b

from perfpilot.api.status import ChangeRecord, ContainerResources, Setting, TuningState, Verdict
from perfpilot.tuning.classify import classify, classify_load, classify_memory, compute_classification_detail
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.engine import decide
from perfpilot.tuning.observations import Observations, PoolLive
from perfpilot.tuning.rules import RuleContext
from perfpilot.tuning.rules.resize import compute_resource_change
from perfpilot.tuning.tables import RESOURCE_ROWS
from perfpilot.tuning.thresholds import DEFAULT_THRESHOLDS as T


def two_level(mean: float, cv: float, count: int = 30) -> list[float]:
    """Alternating mean*(1+cv), mean*(1-cv): population CV exactly ``cv`` (for these values), median ``mean``."""
    return [mean * (1 - cv) if index % 2 else mean * (1 + cv) for index in range(count)]


def provisioning_of(observations: Observations, **profile_overrides: Any) -> Any:
    return compute_classification_detail(b.profile(**profile_overrides), observations).provisioning


def resized(change: ProposedChange | str) -> list[ContainerResources]:
    assert isinstance(change, ProposedChange), change
    after = change.edit.to_value
    assert isinstance(after, list)
    return after


def resource_change(row: str, observations: Observations | None = None, **profile_overrides: Any) -> Any:
    """The resources row ``row`` applied to every selected container, as the rules call it."""
    profile = b.profile(**profile_overrides)
    observations = observations or b.observations()
    ctx = RuleContext(profile=profile, observations=observations, thresholds=T, now_seconds=b.NOW.timestamp(),
                      detail=compute_classification_detail(profile, observations, thresholds=T))
    return compute_resource_change(ctx, row=RESOURCE_ROWS[row], cpu=True, memory=True, why="audit")


# --- load pattern -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cv", "was_bursty"), [(0.30, False), (0.25, True)])
def test_load_with_cv_exactly_at_the_bursty_threshold_is_not_bursty(cv: float, was_bursty: bool) -> None:
    # "above 0.30" enters Bursty; "at or under 0.25" leaves it.
    rate = b.series(two_level(100, cv), count=30)
    assert classify_load(b.observations(request_rate_per_second=rate), was_bursty=was_bursty).label == "Steady"


@pytest.mark.parametrize(("peak", "was_bursty", "label"), [
    (200.0, False, "Steady"),  # exactly 2 x the median does not enter Bursty
    (185.0, True, "Bursty"),  # above 1.8 x the median keeps an earlier Bursty
    (180.0, True, "Steady"),  # at 1.8 x it leaves it
])
def test_bursty_load_is_entered_above_twice_the_median_and_left_at_one_point_eight(
    peak: float, was_bursty: bool, label: str
) -> None:
    rate = b.series([100.0] * (b.SAMPLES - 1) + [peak])  # CV under 0.25: the peak alone decides
    assert classify_load(b.observations(request_rate_per_second=rate), was_bursty=was_bursty).label == label


def _bursty_row_record(*, verdict: Verdict, to_value: int = 60) -> TuningState:
    return TuningState(last_change=ChangeRecord(
        at=b.NOW - b.minutes(300), target="HorizontalPodAutoscaler/api", setting=Setting.HPA_CPU_TARGET,
        from_value=70, to_value=to_value, table_row="Bursty, unpredictable", verdict=verdict,
        verdict_at=b.NOW - b.minutes(285)))


@pytest.mark.parametrize(("verdict", "live_target", "label"), [
    (Verdict.KEPT, 60, "Bursty"),  # perfpilot's own Bursty decision, live: the leave thresholds apply
    (Verdict.REVERTED, 60, "Steady"),  # undone: it engages nothing
    (Verdict.ROLLED_BACK, 60, "Steady"),
    (Verdict.KEPT, 65, "Steady"),  # the live target is no longer the one it set
])
def test_only_a_live_not_undone_bursty_decision_engages_the_leave_thresholds(
    verdict: Verdict, live_target: int, label: str
) -> None:
    rate = b.series(two_level(100, 0.27, count=b.SAMPLES))  # CV 0.27: between the leave and enter thresholds
    observations = b.observations(request_rate_per_second=rate,
                                  live=b.live(hpa=b.hpa(cpu_target_percent=live_target)))
    detail = compute_classification_detail(b.profile(), observations, state=_bursty_row_record(verdict=verdict))
    assert detail.load.label == label


# --- memory pattern -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "label"), [(T.min_samples_for_pattern - 1, "Unknown"),
                                              (T.min_samples_for_pattern, "Stable")])
def test_memory_pattern_needs_five_samples_and_no_more(count: int, label: str) -> None:
    observations = b.observations(memory_working_set_bytes_per_pod=b.series(600 * b.MI, count=count))
    assert classify_memory(observations).label == label


def test_memory_with_cv_exactly_at_the_variable_threshold_is_stable() -> None:
    working_set = b.series(two_level(100 * b.MI, 0.20), count=30)
    assert classify_memory(b.observations(memory_working_set_bytes_per_pod=working_set)).label == "Stable"


def test_a_memory_slope_is_trusted_over_exactly_ten_minutes() -> None:
    working_set = b.series(b.ramp(300 * b.MI, 400 * b.MI, count=11), count=11)  # 600 s span
    assert classify_memory(b.observations(memory_working_set_bytes_per_pod=working_set)).label == "Growing"


@pytest.mark.parametrize(("request_bytes", "label"), [(73_728_000, "Stable"), (73_000_000, "Growing")])
def test_memory_rising_exactly_five_percent_of_the_request_an_hour_is_not_growing(
    request_bytes: int, label: str
) -> None:
    # 1024 B/s is 3686400 B/h: exactly 5% of 73728000 B, a little more of 73000000 B (R² 1).
    working_set = b.series([30e6 + 1024 * 60 * index for index in range(b.SAMPLES)])
    live = b.live(containers=(b.container(memory_request_bytes=request_bytes),))
    assert classify_memory(b.observations(memory_working_set_bytes_per_pod=working_set, live=live)).label == label


def test_memory_with_r_squared_exactly_at_the_minimum_is_growing() -> None:
    # 2 B per minute (12% of a 1000 B request an hour) plus a residual orthogonal to the trend whose squares
    # sum to a quarter of the trend's: R² = 1 / 1.25 = 0.8 exactly, "at least" the minimum.
    residual = {-5: -6, -4: 2, 0: 6, 1: 3, 5: -5}
    working_set = b.series([1000.0 + 2 * k + residual.get(k, 0) for k in range(-5, 6)], count=11)
    live = b.live(containers=(b.container(memory_request_bytes=1000),))
    observations = b.observations(memory_working_set_bytes_per_pod=working_set, live=live)
    assert classify_memory(observations).label == "Growing"


# --- provisioning: the bound thresholds and statistics ------------------------------------------------------


@pytest.mark.parametrize("signals", [
    {"cpu_throttled_ratio": b.series(T.cpu_bound_throttled_ratio)},  # mean exactly 10% of CFS periods
    {"cpu_usage_millicores_per_pod": b.series(1800.0)},  # p95 exactly 90% of the 2000m limit
    {"memory_working_set_bytes_per_pod": b.series(0.9 * b.GI)},  # peak exactly 90% of the 1Gi request
])
def test_a_signal_exactly_at_its_bound_threshold_is_not_bound(signals: dict[str, Any]) -> None:
    assert classify(b.profile(), b.observations(**signals)).provisioning == "Right"


@pytest.mark.parametrize(("signals", "label"), [
    # The mean throttled share, not one throttled scrape.
    ({"cpu_throttled_ratio": b.series([0.0] * (b.SAMPLES - 1) + [0.5])}, "Right"),
    # The 95th percentile of usage, neither the peak (one sample at 95% of the limit) ...
    ({"cpu_usage_millicores_per_pod": b.series([1000.0] * (b.SAMPLES - 1) + [1900.0])}, "Right"),
    # ... nor the mean (six samples of 31 at 95%: p95 1900m, mean 1174m).
    ({"cpu_usage_millicores_per_pod": b.series([1000.0] * (b.SAMPLES - 6) + [1900.0] * 6)}, "CpuBound"),
    # The peak working set: one sample at 95% of the request makes it memory-bound.
    ({"memory_working_set_bytes_per_pod": b.series([0.5 * b.GI] * (b.SAMPLES - 1) + [0.95 * b.GI])}, "MemoryBound"),
])
def test_bounds_read_the_statistic_the_docs_name(signals: dict[str, Any], label: str) -> None:
    assert classify(b.profile(), b.observations(**signals)).provisioning == label


# --- provisioning: Over ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("signals", [
    {"cpu_usage_millicores_per_pod": b.series(400.0)},  # exactly 40% of 1000m
    {"memory_working_set_bytes_per_pod": b.series(0.4 * b.GI)},  # exactly 40% of 1Gi
    {"cpu_usage_millicores_per_pod": b.series([300.0] * (b.SAMPLES - 1) + [500.0])},  # mean 31%, peak 50%
    {"memory_working_set_bytes_per_pod": b.series([0.3 * b.GI] * (b.SAMPLES - 1) + [0.5 * b.GI])},
    {"cpu_usage_millicores_per_pod": b.series(200.0), "replicas": b.series([2.0] * (b.SAMPLES - 1) + [3.0])},
])
def test_over_needs_the_peak_under_forty_percent_and_cpu_at_min_replicas_all_window(signals: dict[str, Any]) -> None:
    observations = b.observations(**{"replicas": b.series(2), **signals})
    provisioning = provisioning_of(observations)
    assert (provisioning.label, provisioning.cpu_over, provisioning.memory_over) == ("Right", False, False)


def test_p95_exactly_at_the_slo_still_meets_it_for_over_provisioning() -> None:
    observations = b.observations(latency_p95_seconds=b.series([0.35] * (b.SAMPLES - 1) + [0.5]),
                                  memory_working_set_bytes_per_pod=b.series(0.3 * b.GI))
    provisioning = provisioning_of(observations)
    assert (provisioning.label, provisioning.memory_over) == ("Over", True)


def test_growing_memory_is_never_called_over_provisioned_and_the_reason_says_why() -> None:
    observations = b.observations(memory_working_set_bytes_per_pod=b.series(b.ramp(200 * b.MI, 300 * b.MI)))
    detail = compute_classification_detail(b.profile(), observations)
    assert detail.memory.label == "Growing"
    assert detail.provisioning.memory_over is False
    assert "memory left alone: growing" in detail.provisioning.evidence


def test_no_memory_is_cut_while_the_pod_grows_though_no_container_grows_steadily_on_its_own() -> None:
    # The app rises 150Mi in the window (29% of its 1Gi an hour) under +-40Mi of noise that the sidecar's
    # mirrors: each container's fit is poor, the pod's total rises cleanly (10% of its 3Gi an hour): Growing.
    noise = [40.0 if index % 2 else -40.0 for index in range(b.SAMPLES)]
    app = [v + n for v, n in zip(b.ramp(200, 350), noise, strict=True)]
    live = b.live(containers=(b.container(), b.container("sidecar", memory_request_bytes=2 * b.GI,
                                                         memory_limit_bytes=4 * b.GI)))
    observations = replace(
        b.observations(live=live, memory_working_set_bytes_per_pod=b.series([v * b.MI for v in b.ramp(700, 850)])),
        memory_working_set_bytes_by_container={"app": b.series([v * b.MI for v in app]),
                                               "sidecar": b.series([(500 - n) * b.MI for n in noise])},
        cpu_usage_millicores_by_container={"app": b.series(500), "sidecar": b.series(500)},
        cpu_throttled_ratio_by_container={"app": b.series(0.0), "sidecar": b.series(0.0)})
    detail = compute_classification_detail(b.profile(), observations)
    assert detail.memory.label == "Growing"
    assert (detail.provisioning.label, detail.provisioning.memory_containers) == ("Right", ())
    assert "memory left alone: growing" in detail.provisioning.evidence


def test_a_pod_oom_count_alone_makes_every_selected_container_memory_bound() -> None:
    live = b.live(containers=(b.container(), b.container("sidecar")), oom_kills_in_window=1)
    provisioning = provisioning_of(b.observations(live=live))
    assert (provisioning.label, provisioning.memory_containers) == ("MemoryBound", ("app", "sidecar"))


def test_a_pod_without_a_memory_request_leaves_memory_and_provisioning_unknown() -> None:
    live = b.live(containers=(b.container(memory_request_bytes=None, memory_limit_bytes=None),))
    detail = compute_classification_detail(b.profile(), b.observations(live=live))
    assert (detail.memory.label, detail.memory.blocked_by) == ("Unknown", ("live.memory_request",))
    assert detail.provisioning.label == "Unknown"
    assert "live.memory_request" in detail.provisioning.blocked_by


def test_pool_load_is_the_peak_demand_per_pooler_replica() -> None:
    observations = b.observations(pool_server_active=b.series(30),
                                  live=b.live(pool=PoolLive(default_pool_size=20, reserve_pool_size=10,
                                                            pooler_replicas=2)))
    assert classify(b.profile(), observations).pool_load == "Normal"  # 15 per pooler, not 30


# --- the resources rows -----------------------------------------------------------------------------------


def test_requests_only_never_raises_a_memory_request_above_its_limit() -> None:
    live = b.live(containers=(b.container(memory_limit_bytes=1200 * b.MI),), oom_kills_in_window=1)
    after = resized(resource_change("MemoryBound", b.observations(live=live), resources={"limits": "RequestsOnly"}))
    assert (after[0].memory_request_bytes, after[0].memory_limit_bytes) == (1200 * b.MI, 1200 * b.MI)


def test_a_memory_request_is_rounded_to_whole_mebibytes_toward_the_old_value() -> None:
    live = b.live(containers=(b.container(memory_request_bytes=1001 * b.MI),))
    after = resized(resource_change("MemoryBound", b.observations(live=live)))
    assert after[0].memory_request_bytes == 1501 * b.MI  # 1501.5Mi rounded down


def test_a_guaranteed_cut_brings_the_limits_down_to_the_requests() -> None:
    after = resized(resource_change("Over", resources={"limits": "Guaranteed"}))
    assert (after[0].cpu_request_millicores, after[0].cpu_limit_millicores) == (750, 750)
    assert (after[0].memory_request_bytes, after[0].memory_limit_bytes) == (768 * b.MI, 768 * b.MI)


def test_a_cut_stops_at_the_request_minimums() -> None:
    after = resized(resource_change("Over", resources={"cpu": {"min": "800m", "max": "4"},
                                                       "memory": {"min": "900Mi", "max": "8Gi"}}))
    assert (after[0].cpu_request_millicores, after[0].memory_request_bytes) == (800, 900 * b.MI)


def test_a_raise_stops_at_the_memory_maximum() -> None:
    after = resized(resource_change("MemoryBound", resources={"memory": {"min": "64Mi", "max": "1200Mi"}}))
    assert after[0].memory_request_bytes == 1200 * b.MI


def test_keep_ratio_leaves_a_missing_cpu_limit_missing() -> None:
    live = b.live(containers=(b.container(cpu_limit_millicores=None),))
    after = resized(resource_change("CpuBound", b.observations(live=live)))
    assert (after[0].cpu_request_millicores, after[0].cpu_limit_millicores) == (1500, None)


def test_the_coupled_cpu_target_stays_within_cpu_target_min() -> None:
    # 70% x 1000m / 1500m = 47%, under cpuTarget.min 50%, with a step limit that would allow it.
    change = resource_change("CpuBound", guardrails={"maxTargetStep": 30})
    assert isinstance(change, ProposedChange) and change.coupled is not None
    assert change.coupled.to_value == 50


def test_an_hpa_the_profile_does_not_tune_gets_no_coupled_cpu_target() -> None:
    change = resource_change("CpuBound", hpa={"enabled": False})
    assert isinstance(change, ProposedChange)
    assert (change.coupled, change.coupled_target) == (None, "")
    assert resized(change)[0].cpu_request_millicores == 1500


def test_a_cpu_cut_with_the_load_unknown_couples_the_target_within_its_bounds() -> None:
    # No load, no table row to cap the raise: 70% x 1000m / 750m = 93% is held by cpuTarget.max 80%.
    change = resource_change("Over", b.observations(request_rate_per_second=b.unknown()))
    assert isinstance(change, ProposedChange) and change.coupled is not None
    assert change.coupled.to_value == 80


def test_a_profile_that_does_not_tune_resources_gets_no_resources_change() -> None:
    assert resource_change("CpuBound", resources={"enabled": False}) == "resources not tuned"
    observations = b.observations(cpu_throttled_ratio=b.series(0.2))
    decision = decide(b.profile(resources={"enabled": False}), observations, b.EMPTY_STATE, b.NOW)
    assert decision.change is None or decision.change.edit.setting is not Setting.RESOURCES, decision.reason


def test_decide_raises_memory_without_coupling_a_cpu_target() -> None:
    decision = decide(b.profile(), b.observations(live=b.live(oom_kills_in_window=1)), b.EMPTY_STATE, b.NOW)
    assert decision.change is not None and decision.change.coupled is None
    assert decision.change.coupled_target == ""
    assert "CPU target" not in decision.change.reason
