"""Every classification threshold, just below and just above (DESIGN section 4)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import tuning_builders as b

from perfpilot.tuning.classify import classify, compute_classification_detail
from perfpilot.tuning.thresholds import DEFAULT_THRESHOLDS as T


def two_level(mean: float, cv: float, count: int = 30) -> list[float]:
    """Alternating mean*(1-cv), mean*(1+cv): population CV exactly ``cv``, median ``mean``, no trend."""
    return [mean * (1 - cv) if index % 2 else mean * (1 + cv) for index in range(count)]


# DESIGN: Bursty above a coefficient of variation of 0.3 (the values are DESIGN's, not read from the code).
@pytest.mark.parametrize(("cv", "expected"), [(0.29, "Steady"), (0.31, "Bursty")])
def test_load_is_bursty_only_above_a_cv_of_point_three(cv: float, expected: str) -> None:
    rate = b.series(two_level(100, cv), count=30)
    assert classify(b.profile(), b.observations(request_rate_per_second=rate)).load_pattern == expected


@pytest.mark.parametrize(("peak", "expected"), [(199.0, "Steady"), (201.0, "Bursty")])
def test_load_is_bursty_when_its_peak_exceeds_twice_the_median(peak: float, expected: str) -> None:
    rate = b.series([100.0] * (b.SAMPLES - 1) + [peak])
    assert classify(b.profile(), b.observations(request_rate_per_second=rate)).load_pattern == expected


@pytest.mark.parametrize(("count", "expected"), [(T.min_samples_for_pattern - 1, "Unknown"),
                                                  (T.min_samples_for_pattern, "Steady")])
def test_load_needs_a_minimum_number_of_samples(count: int, expected: str) -> None:
    rate = b.series(100, count=count)
    assert classify(b.profile(), b.observations(request_rate_per_second=rate)).load_pattern == expected


def test_unknown_request_rate_makes_the_load_pattern_unknown_and_names_the_signal() -> None:
    detail = compute_classification_detail(b.profile(), b.observations(request_rate_per_second=b.unknown()))
    assert detail.load.label == "Unknown"
    assert detail.load.blocked_by == ("request_rate_per_second",)


@pytest.mark.parametrize(("growth_percent_per_hour", "expected"), [
    (4.8, "Stable"),
    (5.2, "Growing"),
])
def test_memory_grows_only_above_five_percent_of_the_request_per_hour(
    growth_percent_per_hour: float, expected: str
) -> None:
    rise_bytes = b.GI * growth_percent_per_hour / 100 * (b.WINDOW_SECONDS / 3600)
    working_set = b.series(b.ramp(500 * b.MI, 500 * b.MI + rise_bytes))
    assert classify(b.profile(), b.observations(memory_working_set_bytes_per_pod=working_set)).memory == expected


def test_a_steep_but_noisy_rise_is_not_growing_without_a_good_linear_fit() -> None:
    noisy = [v + (150 * b.MI if i % 2 else -150 * b.MI) for i, v in enumerate(b.ramp(400 * b.MI, 500 * b.MI))]
    detail = compute_classification_detail(
        b.profile(), b.observations(memory_working_set_bytes_per_pod=b.series(noisy))
    )
    assert detail.memory.label != "Growing"


@pytest.mark.parametrize(("cv", "expected"), [(0.19, "Stable"), (0.21, "Variable")])
def test_memory_is_variable_only_above_a_cv_of_point_two(cv: float, expected: str) -> None:
    working_set = b.series(two_level(500 * b.MI, cv), count=30)
    assert classify(b.profile(), b.observations(memory_working_set_bytes_per_pod=working_set)).memory == expected


@pytest.mark.parametrize(("ratio", "expected"), [(0.09, "Right"), (0.11, "CpuBound")])
def test_cpu_bound_when_throttled_in_more_than_ten_percent_of_periods(ratio: float, expected: str) -> None:
    observations = b.observations(cpu_throttled_ratio=b.series(ratio))
    assert classify(b.profile(), observations).provisioning == expected


@pytest.mark.parametrize(("usage", "expected"), [(1790.0, "Right"), (1810.0, "CpuBound")])
def test_cpu_bound_when_running_above_ninety_percent_of_the_limit(usage: float, expected: str) -> None:
    observations = b.observations(cpu_usage_millicores_per_pod=b.series(usage))  # limit 2000m
    assert classify(b.profile(), observations).provisioning == expected


@pytest.mark.parametrize(("fraction", "expected"), [(0.89, "Right"), (0.91, "MemoryBound")])
def test_memory_bound_above_ninety_percent_of_the_request(fraction: float, expected: str) -> None:
    observations = b.observations(memory_working_set_bytes_per_pod=b.series(fraction * b.GI))
    assert classify(b.profile(), observations).provisioning == expected


def test_an_oom_kill_makes_a_container_memory_bound() -> None:
    observations = b.observations(live=b.live(oom_kills_in_window=1))
    assert classify(b.profile(), observations).provisioning == "MemoryBound"


def test_a_pod_without_a_cpu_limit_needs_no_throttling_signal_to_be_classified() -> None:
    # No CFS quota, no throttling: the reader has no series for it, and none is needed.
    no_limit = b.live(containers=(b.container(cpu_limit_millicores=None),), oom_kills_in_window=3)
    observations = b.observations(cpu_throttled_ratio=b.unknown("no CFS throttling series: no CPU limit"),
                                  live=no_limit)
    assert classify(b.profile(), observations).provisioning == "MemoryBound"
    calm = b.observations(cpu_throttled_ratio=b.unknown("no CFS throttling series: no CPU limit"),
                          live=b.live(containers=(b.container(cpu_limit_millicores=None),)))
    assert classify(b.profile(), calm).provisioning == "Right"


def test_oom_kills_make_a_pod_memory_bound_whatever_the_cpu_and_latency_signals_say() -> None:
    observations = b.observations(latency_p95_seconds=b.unknown("no traffic"),
                                  cpu_usage_millicores_per_pod=b.unknown("no series"),
                                  live=b.live(oom_kills_in_window=2))
    detail = compute_classification_detail(b.profile(), observations).provisioning
    assert detail.label == "MemoryBound" and detail.memory_bound and not detail.cpu_bound
    assert "cpu_usage_millicores_per_pod unknown" in detail.evidence
    # Not bound, the same unknown signals leave provisioning unknown.
    assert classify(b.profile(), replace(observations, live=b.live())).provisioning == "Unknown"


def test_cpu_bound_and_memory_bound_together_is_under_provisioned() -> None:
    observations = b.observations(cpu_throttled_ratio=b.series(0.3), live=b.live(oom_kills_in_window=2))
    assert classify(b.profile(), observations).provisioning == "Under"


@pytest.mark.parametrize(("usage", "expected"), [(390.0, "Over"), (410.0, "Right")])
def test_cpu_over_provisioned_under_forty_percent_at_min_replicas(usage: float, expected: str) -> None:
    observations = b.observations(cpu_usage_millicores_per_pod=b.series(usage), replicas=b.series(2))
    detail = compute_classification_detail(b.profile(), observations)
    assert detail.provisioning.label == expected
    assert detail.provisioning.cpu_over is (expected == "Over")


def test_cpu_is_not_over_provisioned_while_the_hpa_is_above_min_replicas() -> None:
    observations = b.observations(cpu_usage_millicores_per_pod=b.series(200), replicas=b.series(3))
    detail = compute_classification_detail(b.profile(), observations)
    assert detail.provisioning.cpu_over is False
    assert "HPA above minReplicas" in detail.provisioning.evidence


def test_cpu_is_not_over_provisioned_when_the_slo_was_missed_once_in_the_window() -> None:
    latency = b.series([0.3] * (b.SAMPLES - 1) + [0.6])
    observations = b.observations(
        cpu_usage_millicores_per_pod=b.series(200), replicas=b.series(2), latency_p95_seconds=latency
    )
    assert classify(b.profile(), observations).provisioning == "Right"


@pytest.mark.parametrize(("fraction", "expected"), [(0.39, True), (0.41, False)])
def test_memory_over_provisioned_under_forty_percent_of_the_request(fraction: float, expected: bool) -> None:
    observations = b.observations(memory_working_set_bytes_per_pod=b.series(fraction * b.GI))
    assert compute_classification_detail(b.profile(), observations).provisioning.memory_over is expected


def test_memory_is_not_called_over_provisioned_when_oom_kills_are_unknown_and_the_reason_says_why() -> None:
    observations = b.observations(
        memory_working_set_bytes_per_pod=b.series(0.2 * b.GI),
        live=b.live(oom_kills_in_window=b.unknown("no Pods among the manifests")),
    )
    provisioning = compute_classification_detail(b.profile(), observations).provisioning
    assert provisioning.memory_over is False
    assert "memory left alone: OOM kills unknown (no Pods among the manifests)" in provisioning.evidence


@pytest.mark.parametrize("missing", ["latency_p95_seconds", "cpu_usage_millicores_per_pod", "cpu_throttled_ratio",
                                     "memory_working_set_bytes_per_pod", "replicas"])
def test_provisioning_is_unknown_when_a_signal_it_needs_is_unknown(missing: str) -> None:
    detail = compute_classification_detail(b.profile(), b.observations(**{missing: b.unknown()}))
    assert detail.provisioning.label == "Unknown"
    assert missing in detail.provisioning.blocked_by


@pytest.mark.parametrize(("active", "waiting", "tier"), [
    (10, 0, "Light"), (11, 0, "Normal"), (15, 5, "Normal"), (20, 1, "Heavy"), (30, 0, "Heavy"),
    (31, 0, "Peak"), (60, 10, "Peak"),
])
def test_pool_load_tier_from_peak_active_plus_waiting(active: float, waiting: float, tier: str) -> None:
    observations = b.observations(pool_server_active=b.series(active), pool_client_waiting=b.series(waiting))
    assert classify(b.profile(), observations).pool_load == tier


def test_pool_load_is_off_when_the_pool_is_not_tuned() -> None:
    assert classify(b.profile(pool={"enabled": False}), b.observations()).pool_load == "Off"


def test_a_one_container_pod_reads_the_pod_series_where_its_containers_own_query_failed() -> None:
    # The same series by another query: a failed per-container query must not leave the most common pod
    # shape Unknown.
    failed = b.unknown("prometheus query failed: timeout")
    observations = replace(b.observations(memory_working_set_bytes_per_pod=b.series(0.96 * b.GI)),
                           memory_working_set_bytes_by_container={"app": failed},
                           cpu_usage_millicores_by_container={"app": failed},
                           cpu_throttled_ratio_by_container={"app": failed})
    assert classify(b.profile(), observations).provisioning == "MemoryBound"


def test_kills_by_container_must_add_up_to_the_pods_count() -> None:
    # Two counts of one thing must not disagree: the classification would raise one container and not the pod.
    with pytest.raises(ValueError, match=r"OOM kills by container \{'app': 2\} do not add up to the pod's 1"):
        b.live(oom_kills_in_window=1, oom_kills_by_container={"app": 2})
