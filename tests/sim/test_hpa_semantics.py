"""Rules of Kubernetes' HPA controller that its own test cases (``tests/data/hpa_cases.json``) leave open.

Each test pins one rule of ``pkg/controller/podautoscaler`` (``horizontal.go`` and ``replica_calculator.go`` of
kubernetes/kubernetes as they are today, which the model follows) with numbers chosen so that the rule, and
nothing else, decides the result. Every expected value is worked out by hand in the comment above it, from
the Go lines quoted there.

Pods here have one container (``app``) requesting 1000 m of CPU and 1000 units of memory, and started an hour
before ``NOW``, so none is inside the CPU initialisation period unless a test says so.
"""

from __future__ import annotations

import pytest

from perfpilot.api.status import ScalingPolicy, ScalingRules
from perfpilot.sim.hpa import (
    CPU,
    MEMORY,
    Behavior,
    CalculatorConfig,
    Condition,
    Container,
    ControllerConfig,
    HorizontalController,
    HpaSpec,
    MetricTarget,
    Pod,
    PodMetric,
    PodPhase,
    Recommendation,
    ScaleEvent,
    convert_desired_replicas_with_behavior_rate,
    replicas_change_per_period,
    resource_replicas,
    scale_down_limit,
    scale_up_limit,
    stabilize_recommendation,
    stabilize_recommendation_with_behaviors,
    store_scale_event,
)

NOW = 1_000_000.0
LONG_AGO = NOW - 3600.0  # started an hour ago: past the CPU initialisation period (300 s)


def _pod(name: str, *, phase: PodPhase = "Running", start_seconds: float | None = LONG_AGO) -> Pod:
    return Pod(
        name,
        (Container("app", {CPU: 1000, MEMORY: 1000}),),
        phase=phase,
        start_seconds=start_seconds,
        ready_transition_seconds=LONG_AGO,
    )


def _pods(count: int) -> list[Pod]:
    return [_pod(f"p{i}") for i in range(count)]


def _samples(usage_by_pod: dict[str, int]) -> dict[str, PodMetric]:
    return {name: PodMetric({"app": usage}, timestamp_seconds=NOW) for name, usage in usage_by_pod.items()}


def _proposal(
    *,
    current: int,
    target: int,
    pods: list[Pod],
    usage_by_pod: dict[str, int],
    resource: str = CPU,
    tolerance: float = 0.1,
) -> int:
    return resource_replicas(
        current_replicas=current,
        target_utilization_percent=target,
        resource=resource,
        pods=pods,
        metrics=_samples(usage_by_pod),
        now_seconds=NOW,
        config=CalculatorConfig(tolerance=tolerance),
    ).replicas


def _rules(*policies: tuple[str, int, int], select: str = "Max", window: int = 0) -> ScalingRules:
    return ScalingRules.model_validate(
        {
            "stabilization_window_seconds": window,
            "select_policy": select,
            "policies": [ScalingPolicy.model_validate({"type": t, "value": v, "period_seconds": p})
                         for t, v, p in policies],
        }
    )


# --- several metrics: computeReplicasForMetrics (horizontal.go) ---------------------------------------------

CPU_TARGET = MetricTarget("Resource", CPU, 50)
MEMORY_TARGET = MetricTarget("Resource", MEMORY, 50)


def _reconcile_four_pods(
    targets: tuple[MetricTarget, ...],
    *,
    cpu_milli: int,
    memory_milli: int | None,
    history: list[Recommendation] | None,
) -> tuple[HorizontalController, int]:
    """Four pods at ``spec.replicas`` 4, min 1, max 10, no ``behavior``. ``memory_milli=None``: the metrics API
    returns no memory samples, so the memory metric is invalid. ``history=None`` is the controller's "nil"
    (recordInitialRecommendation then records the current count); ``[]`` leaves no stabilisation effect."""
    controller = HorizontalController(ControllerConfig())
    controller.recommendations = history
    names = [f"p{i}" for i in range(4)]
    samples = {CPU: _samples(dict.fromkeys(names, cpu_milli))}
    if memory_milli is not None:
        samples[MEMORY] = _samples(dict.fromkeys(names, memory_milli))
    result = controller.reconcile(
        spec=HpaSpec(1, 10, targets), spec_replicas=4, pods=_pods(4), metrics=samples, now_seconds=NOW
    )
    return controller, result.desired_replicas


@pytest.mark.parametrize("targets", [(CPU_TARGET, MEMORY_TARGET), (MEMORY_TARGET, CPU_TARGET)],
                         ids=["cpu-first", "memory-first"])
@pytest.mark.parametrize(
    ("cpu_milli", "memory_milli", "expected"),
    [
        # CPU 75% of a 50% target: ratio 1.5, ceil(1.5 x 4) = 6; memory 80%: 1.6, ceil(6.4) = 7. The largest, 7,
        # is under the no-behaviour cap max(2 x 4, 4) = 8.
        (750, 800, 7),
        (800, 750, 7),
        # Both scale down: CPU 10% -> 0.2, ceil(0.8) = 1; memory 30% -> 0.6, ceil(2.4) = 3. The largest, 3.
        (100, 300, 3),
        (300, 100, 3),
    ],
)
def test_the_largest_proposal_of_all_metrics_wins_whatever_their_order(
    targets: tuple[MetricTarget, ...], cpu_milli: int, memory_milli: int, expected: int
) -> None:
    # computeReplicasForMetrics: `if replicas == 0 || replicaCountProposal > replicas { replicas = ... }`.
    _, desired = _reconcile_four_pods(targets, cpu_milli=cpu_milli, memory_milli=memory_milli, history=[])
    assert desired == expected


@pytest.mark.parametrize("targets", [(CPU_TARGET, MEMORY_TARGET), (MEMORY_TARGET, CPU_TARGET)],
                         ids=["invalid-last", "invalid-first"])
def test_an_invalid_metric_does_not_block_a_scale_up_from_the_other(targets: tuple[MetricTarget, ...]) -> None:
    # CPU 75% of 50%: ceil(1.5 x 4) = 6 > spec.replicas 4, so `invalidMetricsCount > 0 && replicas < specReplicas`
    # is false and the controller scales on CPU alone: ScalingActive=True/ValidMetricFound.
    controller, desired = _reconcile_four_pods(targets, cpu_milli=750, memory_milli=None, history=[])
    assert desired == 6
    assert controller.conditions["ScalingActive"] == Condition("True", "ValidMetricFound")


@pytest.mark.parametrize("targets", [(CPU_TARGET, MEMORY_TARGET), (MEMORY_TARGET, CPU_TARGET)],
                         ids=["invalid-last", "invalid-first"])
def test_an_invalid_metric_skips_a_scale_down_from_the_other(targets: tuple[MetricTarget, ...]) -> None:
    # Kubernetes >= 1.21 (kubernetes/kubernetes#99514), computeReplicasForMetrics:
    #   if invalidMetricsCount >= len(metricSpecs) || (invalidMetricsCount > 0 && replicas < specReplicas) {
    #       setCondition(hpa, invalidMetricCondition.Type, ...); return -1, ...
    # CPU 10% of 50% says ceil(0.2 x 4) = 1 < 4: the first invalid metric's condition is set, the scale is left
    # alone and (returning before normalisation) only recordInitialRecommendation's entry is kept.
    controller, desired = _reconcile_four_pods(targets, cpu_milli=100, memory_milli=None, history=None)
    assert desired == 4
    assert controller.conditions["ScalingActive"] == Condition("False", "FailedGetResourceMetric")
    assert controller.recommendations == [Recommendation(4, NOW)]


def test_an_invalid_metric_does_not_skip_a_proposal_equal_to_the_current_count() -> None:
    # `replicas < specReplicas` is strict: CPU at exactly its target (ratio 1.0) proposes 4 == spec.replicas, so
    # the controller goes on (ValidMetricFound) and stabilizeRecommendation appends the proposal to the history
    # recordInitialRecommendation started: two entries.
    controller, desired = _reconcile_four_pods(
        (CPU_TARGET, MEMORY_TARGET), cpu_milli=500, memory_milli=None, history=None
    )
    assert desired == 4
    assert controller.conditions["ScalingActive"] == Condition("True", "ValidMetricFound")
    assert controller.recommendations == [Recommendation(4, NOW), Recommendation(4, NOW)]


# --- policy limits: calculateScale{Up,Down}Limit* (horizontal.go) -------------------------------------------


@pytest.mark.parametrize(
    ("current", "percent", "expected"),
    [
        (5, 10, 4),  # int32(5 x 0.9) = int32(4.5) = 4 (rounding up would allow no scale-down at all: 5)
        (5, 50, 2),  # int32(5 x 0.5) = int32(2.5) = 2
        (10, 15, 8),  # int32(10 x 0.85) = int32(8.5) = 8
    ],
)
def test_percent_scale_down_limit_truncates(current: int, percent: int, expected: int) -> None:
    # calculateScaleDownLimitWithBehaviors:
    #   proposed = int32(float64(periodStartReplicas) * (1 - float64(policy.Value)/100))
    rules = Behavior.of(scale_up=None, scale_down=_rules(("Percent", percent, 60))).scale_down
    assert scale_down_limit(current, up_events=[], down_events=[], rules=rules, now_seconds=NOW) == expected


def test_percent_scale_down_policy_stops_a_scale_down_at_the_truncated_limit() -> None:
    # convertDesiredReplicasWithBehaviorRate: desired 1 < current 5; the 10%/60 s policy's limit int32(4.5) = 4 is
    # above minReplicas 1, so the result is 4 with ScaleDownLimit.
    behavior = Behavior.of(scale_up=None, scale_down=_rules(("Percent", 10, 60)))
    assert convert_desired_replicas_with_behavior_rate(
        current_replicas=5, desired_replicas=1, min_replicas=1, max_replicas=10, behavior=behavior,
        up_events=[], down_events=[], now_seconds=NOW,
    ) == (4, "ScaleDownLimit")


def test_percent_scale_up_limit_rounds_up() -> None:
    # calculateScaleUpLimitWithScalingRules: "the proposal has to be rounded up":
    #   proposed = int32(math.Ceil(float64(periodStartReplicas) * (1 + float64(policy.Value)/100)))
    # ceil(5 x 1.1) = ceil(5.5) = 6.
    rules = Behavior.of(scale_up=_rules(("Percent", 10, 60)), scale_down=None).scale_up
    assert scale_up_limit(5, up_events=[], down_events=[], rules=rules, now_seconds=NOW) == 6


# --- period and window edges: After/Before are strict -------------------------------------------------------


def test_a_scale_event_exactly_one_period_old_is_outside_the_period() -> None:
    # getReplicasChangePerPeriod: cutoff := now - period; `if rec.timestamp.After(cutoff)` counts the event.
    # The +3 at now - 60 s is not After the cutoff; the +2 at now - 59 s is: 2.
    events = [ScaleEvent(3, NOW - 60), ScaleEvent(2, NOW - 59)]
    assert replicas_change_per_period(60, events, now_seconds=NOW) == 2


def test_a_scale_up_exactly_one_period_old_no_longer_uses_the_allowance() -> None:
    # calculateScaleUpLimitWithScalingRules with one policy Pods 4 / 60 s and a +4 event at exactly now - 60 s:
    # replicasAddedInCurrentPeriod = 0, periodStartReplicas = 10, limit 10 + 4 = 14 (were the event counted,
    # the period would have started at 6 and the limit would be 10).
    rules = Behavior.of(scale_up=_rules(("Pods", 4, 60)), scale_down=None).scale_up
    limit = scale_up_limit(10, up_events=[ScaleEvent(4, NOW - 60)], down_events=[], rules=rules, now_seconds=NOW)
    assert limit == 14


def test_a_recommendation_exactly_one_down_window_old_does_not_hold_a_scale_down() -> None:
    # stabilizeRecommendationWithBehaviors: `if rec.timestamp.After(downCutoff) { downRecommendation = max(...) }`.
    # The 8 recorded exactly 60 s ago (down window 60 s) is not After the cutoff: downRecommendation stays 5;
    # upRecommendation (window 0) is 5; recommendation = min(max(8, 5), 5) = 5. It is not Before both cutoffs
    # either (`rec.timestamp.Before(upCutoff) && rec.timestamp.Before(downCutoff)`), so it is not reused: the
    # new recommendation is appended.
    log = [Recommendation(8, NOW - 60)]
    result = stabilize_recommendation_with_behaviors(
        log, current_replicas=8, prenormalized=5, up_window_seconds=0, down_window_seconds=60, now_seconds=NOW
    )
    assert result == 5
    assert [r.replicas for r in log] == [8, 5]


def test_a_recommendation_exactly_one_up_window_old_does_not_hold_back_a_scale_up() -> None:
    # `if rec.timestamp.After(upCutoff) { upRecommendation = min(...) }`: the 3 recorded exactly 60 s ago (up
    # window 60 s) is not After the cutoff, so upRecommendation stays 6; it is inside the 300 s down window, so
    # downRecommendation = max(6, 3) = 6. recommendation = min(max(3, 6), 6) = 6; appended, not reused.
    log = [Recommendation(3, NOW - 60)]
    result = stabilize_recommendation_with_behaviors(
        log, current_replicas=3, prenormalized=6, up_window_seconds=60, down_window_seconds=300, now_seconds=NOW
    )
    assert result == 6
    assert [r.replicas for r in log] == [3, 6]


def test_without_behavior_a_recommendation_exactly_one_window_old_still_counts() -> None:
    # stabilizeRecommendation (no behaviour) tests the other side: `if rec.timestamp.Before(cutoff)` marks an old
    # sample, `else if rec.recommendation > maxRecommendation` counts it. The 8 recorded exactly 300 s ago is not
    # Before the cutoff, so it counts (8) and is not reused: the 5 is appended.
    log = [Recommendation(8, NOW - 300)]
    assert stabilize_recommendation(log, prenormalized=5, window_seconds=300, now_seconds=NOW) == 8
    assert [r.replicas for r in log] == [8, 5]


@pytest.mark.parametrize("new_replicas", [13, 8], ids=["scale-up", "scale-down"])
def test_a_scale_event_exactly_one_longest_period_old_is_not_outdated(new_replicas: int) -> None:
    # markScaleEventsOutdated: `if event.timestamp.Before(cutoff) { scaleEvents[i].outdated = true }`, cutoff
    # now - longest policy period (60 s). The event at exactly now - 60 s is kept, and storeScaleEvent appends
    # the new one (|10 - 13| = 3 or |10 - 8| = 2) instead of reusing its slot.
    rules = _rules(("Pods", 4, 60), ("Percent", 10, 30))
    behavior = Behavior.of(scale_up=rules, scale_down=rules)
    up: list[ScaleEvent] = []
    down: list[ScaleEvent] = []
    kept = up if new_replicas > 10 else down
    kept.append(ScaleEvent(2, NOW - 60))
    store_scale_event(behavior=behavior, up_events=up, down_events=down, previous_replicas=10,
                      new_replicas=new_replicas, now_seconds=NOW)
    assert [(e.replica_change, e.outdated) for e in kept] == [(2, False), (abs(new_replicas - 10), False)]


# --- filling in missing and unready pods: GetResourceReplicas (replica_calculator.go) ----------------------


def test_missing_pods_filled_in_never_turn_a_scale_down_into_a_scale_up() -> None:
    # Two pods at 400 m, three without samples, target 50%: utilisation 800 x 100 / 2000 = 40%, ratio 0.8.
    # On a scale-down the missing pods count at 100% of their request: (800 + 3000) x 100 / 5000 = 76%, new ratio
    # 1.52. `(usageRatio < 1.0 && newUsageRatio > 1.0)` -> keep currentReplicas 5 (not ceil(1.52 x 5) = 8).
    assert _proposal(current=5, target=50, pods=_pods(5), usage_by_pod={"p0": 400, "p1": 400}) == 5


def test_unready_pods_filled_in_never_turn_a_scale_up_into_a_scale_down() -> None:
    # One ready pod at 600 m (60% of a 50% target: ratio 1.2) and four Pending pods (unready). On a scale-up the
    # unready pods count at 0%: 600 x 100 / 5000 = 12%, new ratio 0.24. `(usageRatio > 1.0 && newUsageRatio <
    # 1.0)` -> keep currentReplicas 5 (not ceil(0.24 x 5) = 2).
    pods = [_pod("p0"), *(_pod(f"p{i}", phase="Pending") for i in range(1, 5))]
    assert _proposal(current=5, target=50, pods=pods, usage_by_pod={"p0": 600}) == 5


def test_a_scale_down_ratio_never_yields_more_replicas_than_the_current_count() -> None:
    # spec.replicas 2 but four pods listed (say, a scale-down still terminating). Two at 100 m, two missing,
    # target 80%: 200 x 100 / 2000 = 10%, ratio 0.125; missing at 100%: 2200 x 100 / 4000 = 55%, new ratio
    # 0.6875, both below 1. newReplicas = ceil(0.6875 x 4) = 3 > currentReplicas 2 while newUsageRatio < 1.0:
    #   if (newUsageRatio < 1.0 && newReplicas > currentReplicas) || ... { return currentReplicas, ... }
    assert _proposal(current=2, target=80, pods=_pods(4), usage_by_pod={"p0": 100, "p1": 100}) == 2


def test_a_scale_up_ratio_never_yields_fewer_replicas_than_the_current_count() -> None:
    # spec.replicas 6 but three pods listed (a scale-up whose pods are not created yet). Two at 1000 m (100% of a
    # 50% target: ratio 2.0) and one Pending: 2000 x 100 / 3000 = 66%, new ratio 1.32. newReplicas =
    # ceil(1.32 x 3) = 4 < currentReplicas 6 while newUsageRatio > 1.0 -> keep 6.
    pods = [_pod("p0"), _pod("p1"), _pod("p2", phase="Pending")]
    assert _proposal(current=6, target=50, pods=pods, usage_by_pod={"p0": 1000, "p1": 1000}) == 6


def test_a_missing_pod_counts_at_its_full_request_on_a_scale_down() -> None:
    # Three pods at 100 m, one missing, target 50%: 300 x 100 / 3000 = 10%, ratio 0.2 (a scale-down).
    # fallbackUtilization = max(100, 50) = 100: the missing pod counts at 1000 m. 1300 x 100 / 4000 = 32%,
    # new ratio 0.64, ceil(0.64 x 4) = ceil(2.56) = 3. (At 0% it would be 7% -> ceil(0.56) = 1.)
    assert _proposal(current=4, target=50, pods=_pods(4), usage_by_pod={"p0": 100, "p1": 100, "p2": 100}) == 3


def test_a_missing_pod_counts_at_zero_on_a_scale_up() -> None:
    # Three pods at 800 m, one missing, target 50%: 2400 x 100 / 3000 = 80%, ratio 1.6 (a scale-up). The missing
    # pod counts at 0: 2400 x 100 / 4000 = 60%, new ratio 1.2, ceil(1.2 x 4) = ceil(4.8) = 5. (At its request it
    # would be 85% -> ceil(1.7 x 4) = 7.)
    assert _proposal(current=4, target=50, pods=_pods(4), usage_by_pod={"p0": 800, "p1": 800, "p2": 800}) == 5


def test_a_missing_pod_counts_at_the_target_when_the_target_is_above_100_percent() -> None:
    # GetResourceReplicas, scale-down branch (kubernetes/kubernetes#112178, fixing #111433):
    #   fallbackUtilization := int64(max(100, targetUtilization))
    #   metrics[podName] = metricsclient.PodMetric{Value: requests[podName] * fallbackUtilization / 100}
    # With a 200% target a missing pod at 100% would sit *below* target and deepen the scale-down instead of
    # damping it. Three pods at 1000 m, one missing: 3000 x 100 / 3000 = 100%, ratio 0.5. The missing pod counts
    # at 1000 x 200 / 100 = 2000 m: 5000 x 100 / 4000 = 125%, new ratio 0.625, ceil(0.625 x 4) = ceil(2.5) = 3.
    # (With a 100% fallback: 100% -> 0.5 -> ceil(2.0) = 2.)
    usage = {"p0": 1000, "p1": 1000, "p2": 1000}
    assert _proposal(current=4, target=200, pods=_pods(4), usage_by_pod=usage) == 3


# --- tolerance: `math.Abs(1.0-usageRatio) <= c.tolerance` -------------------------------------------------


@pytest.mark.parametrize(("usage_milli", "expected"), [(1250, 4), (750, 4), (1260, 6), (740, 3)])
def test_a_usage_ratio_exactly_at_the_tolerance_keeps_the_replica_count(usage_milli: int, expected: int) -> None:
    # The test is inclusive (<=). With the default 0.1 no integer utilisation lands on the bound in float64
    # (1 - 0.9 = 0.09999999999999998, 1.1 - 1 = 0.10000000000000009), so a tolerance of 0.25 is used: the
    # --horizontal-pod-autoscaler-tolerance flag accepts it. Four pods, target 100%:
    #   1250 m -> 125%, |1 - 1.25| = 0.25 <= 0.25 -> 4;  750 m -> 75%, 0.25 -> 4;
    #   1260 m -> 126%, 0.26 > 0.25 -> ceil(1.26 x 4) = ceil(5.04) = 6;  740 m -> 74% -> ceil(0.74 x 4) = 3.
    usage = {f"p{i}": usage_milli for i in range(4)}
    assert _proposal(current=4, target=100, pods=_pods(4), usage_by_pod=usage, tolerance=0.25) == expected


def test_a_usage_ratio_exactly_at_the_tolerance_after_filling_in_keeps_the_replica_count() -> None:
    # The second test, on the new ratio, is inclusive too: one pod at 2500 m (250% of a 100% target), one
    # missing, counted at 0 on this scale-up: 2500 x 100 / 2000 = 125%, |1 - 1.25| = 0.25 <= 0.25 -> keep 2
    # (not ceil(1.25 x 2) = 3).
    assert _proposal(current=2, target=100, pods=_pods(2), usage_by_pod={"p0": 2500}, tolerance=0.25) == 2


@pytest.mark.parametrize(("usage_milli", "expected"), [(900, 4), (1100, 5)])
def test_the_default_tolerance_band_is_what_float64_makes_of_it(usage_milli: int, expected: int) -> None:
    # Go and Python share IEEE 754 doubles: at 90% of a 100% target |1 - 0.9| = 0.09999999999999998 <= 0.1
    # (keep 4), at 110% |1 - 1.1| = 0.10000000000000009 > 0.1, so ceil(1.1 x 4) = ceil(4.4) = 5.
    usage = {f"p{i}": usage_milli for i in range(4)}
    assert _proposal(current=4, target=100, pods=_pods(4), usage_by_pod=usage) == expected


# --- readiness: groupPods ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("resource", "expected"), [(CPU, 4), (MEMORY, 6)])
def test_a_pod_without_a_start_time_is_unready_for_cpu_only(resource: str, expected: int) -> None:
    # groupPods: `if resource == v1.ResourceCPU { ... if condition == nil || pod.Status.StartTime == nil {
    # unready = true } ... }`. Three pods at 1000 m (100% of a 50% target); p1 has no start time.
    # CPU: p1 is unready. p0 and p2 give ratio 2.0 > 1, so p1 counts at 0: 2000 x 100 / 3000 = 66%, new ratio
    # 1.32, ceil(1.32 x 3) = ceil(3.96) = 4. Memory: readiness is not looked at, ratio 2.0, ceil(2.0 x 3) = 6.
    pods = [_pod("p0"), _pod("p1", start_seconds=None), _pod("p2")]
    usage = {"p0": 1000, "p1": 1000, "p2": 1000}
    assert _proposal(current=3, target=50, pods=pods, usage_by_pod=usage, resource=resource) == expected
