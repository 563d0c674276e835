"""The HPA model reproduces Kubernetes' own controller tests (``tests/data/hpa_cases.json``).

Every case about CPU/memory resource metrics, scaling rules, scale limits, stabilisation and scale-event
bookkeeping runs here. The ones left out are data, not skips: ``LEFT_OUT`` maps each one's name to the
reason, only the other cases are parametrized, and a test checks that the cases run plus ``LEFT_OUT`` are
exactly the cases in the file, so none can silently disappear and no stale name can linger.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from perfpilot.api.status import ScalingRules
from perfpilot.sim.hpa import (
    CPU,
    MEMORY,
    Behavior,
    CalculatorConfig,
    Container,
    ControllerConfig,
    HorizontalController,
    HpaSpec,
    MetricError,
    MetricTarget,
    Pod,
    PodMetric,
    Recommendation,
    ScaleEvent,
    convert_desired_replicas_with_behavior_rate,
    convert_desired_replicas_with_rules,
    replicas_change_per_period,
    resource_replicas,
    scale_down_limit,
    scale_up_limit,
    stabilize_recommendation,
    stabilize_recommendation_with_behaviors,
    store_scale_event,
)

CASES = json.loads((Path(__file__).parents[1] / "data" / "hpa_cases.json").read_text())
NOW = 1_000_000.0
# The tests' controller constants (the file's sources.constants).
TEST_CALCULATOR = CalculatorConfig(
    tolerance=0.1, cpu_initialization_period_seconds=120.0, initial_readiness_delay_seconds=10.0
)
ZERO_TIME = -1e12  # Go's zero time: long before anything else
START = {"hot": NOW, "cool": NOW - 180.0}

CUSTOM_METRICS = "custom, object or external metrics: the simulator's HPA scales on CPU/memory resources only"
API_FAILURE = "a failing scale-subresource update is API-server behaviour, not modelled"
SKIPPED_IN_SOURCE = "skipped by the Kubernetes test body itself (skipped_in_source)"
SINCE_1_21 = ("expects a scale-down while one metric is invalid; Kubernetes 1.21 restored the rule that this skips "
              "the scale-down and removed the test (kubernetes/kubernetes#99514); the model follows 1.21+ "
              "(test_no_scale_down_while_one_metric_fails)")
# The conditions horizontal_test.go expects after one reconcile (it compares the whole list): statusOk, with the
# case's `expected_conditions` and `expected_limiting_reason` overriding one condition each
# (statusOkWithOverrides). The tables below hold what the file does not carry.
STATUS_OK: dict[str, tuple[str, str]] = {
    "AbleToScale": ("True", "SucceededRescale"),
    "ScalingActive": ("True", "ValidMetricFound"),
    "ScalingLimited": ("False", "DesiredWithinRange"),
}
_GOT_SCALE = ("True", "SucceededGetScale")  # set once the scale subresource is read; SucceededRescale after an update
_RESCALED_ONLY = {"AbleToScale": ("True", "SucceededRescale")}
# Cases whose Go test lists its own conditions instead of overriding statusOk.
OWN_CONDITIONS: dict[str, dict[str, tuple[str, str]]] = {
    "TestScaleUpBothMetricsEmpty": {"AbleToScale": _GOT_SCALE, "ScalingActive": ("False", "InvalidMetricSourceType")},
    "TestZeroReplicas": {"AbleToScale": _GOT_SCALE, "ScalingActive": ("False", "ScalingDisabled")},
    "TestEmptyMetrics": {"AbleToScale": _GOT_SCALE, "ScalingActive": ("False", "FailedGetResourceMetric")},
    "TestEmptyCPURequest": {"AbleToScale": _GOT_SCALE, "ScalingActive": ("False", "FailedGetResourceMetric")},
    # The min/max short-cuts read no metric and normalise nothing.
    "TestTooFewReplicas": _RESCALED_ONLY,
    "TestTooManyReplicas": _RESCALED_ONLY,
    "TestScaleUpRCImmediately": _RESCALED_ONLY,
    "TestScaleDownRCImmediately": _RESCALED_ONLY,
    # The file's case is from about 1.20 (AbleToScale=True/ScaleDownStabilized after the initial-size
    # stabilisation). Since 1.21, which the model follows, the scale-down is skipped for the invalid metric before
    # stabilisation runs (kubernetes/kubernetes#99514), and horizontal_test.go expects these two conditions.
    "TestNoScaleDownOneMetricInvalid": {
        "AbleToScale": _GOT_SCALE, "ScalingActive": ("False", "InvalidMetricSourceType"),
    },
}
# statusOkWithOverrides(AbleToScale=True/ReadyForNewScale) in horizontal_test.go, left out of the file: the cases
# whose recommendation is the current count, so nothing is stabilised and nothing rescaled.
READY_FOR_NEW_SCALE = frozenset({
    "TestScaleUpUnreadyNoScale",
    "TestScaleUpHotCpuNoScale",
    "TestTolerance",
    "TestEventNotCreated",
    "TestMoreReplicasThanSpecNoScale",
    "TestComputedToleranceAlgImplementation[tc2]",
})
# TestAvoidUnnecessaryUpdates fails if the HPA is updated at all; it compares no conditions.
NO_CONDITIONS_CHECKED = frozenset({"TestAvoidUnnecessaryUpdates"})
# Case name -> why the simulator's HPA model is not checked against it. Names are unique in the file.
LEFT_OUT: dict[str, str] = {
    # replica_calculator: pods, object and external metrics
    "TestReplicaCalcScaleUpCM": CUSTOM_METRICS,
    "TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale": CUSTOM_METRICS,
    "TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown": CUSTOM_METRICS,
    "TestReplicaCalcScaleUpCMObject": CUSTOM_METRICS,
    "TestReplicaCalcScaleUpCMPerPodObject": CUSTOM_METRICS,
    "TestReplicaCalcScaleUpCMObjectIgnoresUnreadyPods": CUSTOM_METRICS,
    "TestReplicaCalcScaleUpCMExternal": CUSTOM_METRICS,
    "TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods": CUSTOM_METRICS,
    "TestReplicaCalcScaleUpCMExternalNoLabels": CUSTOM_METRICS,
    "TestReplicaCalcScaleUpPerPodCMExternal": CUSTOM_METRICS,
    "TestReplicaCalcScaleDownCM": CUSTOM_METRICS,
    "TestReplicaCalcScaleDownPerPodCMObject": CUSTOM_METRICS,
    "TestReplicaCalcScaleDownCMObject": CUSTOM_METRICS,
    "TestReplicaCalcScaleDownCMExternal": CUSTOM_METRICS,
    "TestReplicaCalcScaleDownPerPodCMExternal": CUSTOM_METRICS,
    "TestReplicaCalcToleranceCM": CUSTOM_METRICS,
    "TestReplicaCalcToleranceCMObject": CUSTOM_METRICS,
    "TestReplicaCalcTolerancePerPodCMObject": CUSTOM_METRICS,
    "TestReplicaCalcToleranceCMExternal": CUSTOM_METRICS,
    "TestReplicaCalcTolerancePerPodCMExternal": CUSTOM_METRICS,
    # horizontal_controller
    "TestScaleUpCM": CUSTOM_METRICS,
    "TestScaleUpCMUnreadyAndHotCpuNoLessScale": CUSTOM_METRICS,
    "TestScaleUpCMUnreadyandCpuHot": CUSTOM_METRICS,
    "TestScaleUpHotCpuNoScaleWouldScaleDown": CUSTOM_METRICS,
    "TestScaleUpCMObject": CUSTOM_METRICS,
    "TestScaleUpFromZeroCMObject": CUSTOM_METRICS,
    "TestScaleUpFromZeroIgnoresToleranceCMObject": CUSTOM_METRICS,
    "TestScaleUpPerPodCMObject": CUSTOM_METRICS,
    "TestScaleUpCMExternal": CUSTOM_METRICS,
    "TestScaleUpPerPodCMExternal": CUSTOM_METRICS,
    "TestScaleDownCM": CUSTOM_METRICS,
    "TestScaleDownCMObject": CUSTOM_METRICS,
    "TestScaleDownToZeroCMObject": CUSTOM_METRICS,
    "TestScaleDownPerPodCMObject": CUSTOM_METRICS,
    "TestScaleDownCMExternal": CUSTOM_METRICS,
    "TestScaleDownToZeroCMExternal": CUSTOM_METRICS,
    "TestScaleDownPerPodCMExternal": CUSTOM_METRICS,
    "TestToleranceCM": CUSTOM_METRICS,
    "TestToleranceCMObject": CUSTOM_METRICS,
    "TestToleranceCMExternal": CUSTOM_METRICS,
    "TestTolerancePerPodCMObject": CUSTOM_METRICS,
    "TestTolerancePerPodCMExternal": CUSTOM_METRICS,
    "TestNoBackoffUpscaleCM": CUSTOM_METRICS,
    "TestNoBackoffUpscaleCMNoBackoffCpu": CUSTOM_METRICS + " (this one pairs CPU with a pods metric)",
    "TestConditionFailedUpdateScale": API_FAILURE,
    "TestScaleDownOneMetricInvalid": SINCE_1_21,
    "TestScaleDownOneMetricEmpty": SINCE_1_21,
    # scaling_rules
    "TestScalingWithRules/scaleDownLimit is the limit because scaleDownLimit > minReplicas with user defined "
    "policies": SKIPPED_IN_SOURCE,
}


def _in_scope(section: str) -> list[dict[str, Any]]:
    """The section's cases that run: every one not in ``LEFT_OUT``."""
    return [case for case in CASES[section] if case["test"] not in LEFT_OUT]


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(-?\d+)([sm])", text)
    assert match, text
    return float(match.group(1)) * (60 if match.group(2) == "m" else 1)


def _rules(raw: dict[str, Any] | None) -> ScalingRules | None:
    if raw is None:
        return None
    return ScalingRules.model_validate({k: v for k, v in raw.items() if k != "generateScalingRules_args"})


def _generated(args: list[int] | None) -> ScalingRules | None:
    """``generateScalingRules(pods, podsPeriod, percent, percentPeriod, window)`` of the Go tests."""
    if args is None:
        return None
    pods, pods_period, percent, percent_period, window = args
    policies = []
    if pods:
        policies.append({"type": "Pods", "value": pods, "period_seconds": pods_period})
    if percent:
        policies.append({"type": "Percent", "value": percent, "period_seconds": percent_period})
    return ScalingRules.model_validate(
        {"stabilization_window_seconds": window, "select_policy": "Max", "policies": policies}
    )


def _uniform_events(raw: dict[str, Any] | None) -> list[ScaleEvent]:
    """``generateEventsUniformDistribution``: event k of n at now - (span - step*(k+1) + step/2)."""
    if raw is None:
        return []
    span = raw["uniform_over_last_seconds"]
    changes = raw["replica_changes"]
    step = span / len(changes)
    return [ScaleEvent(change, NOW - (span - step * (k + 1) + step / 2)) for k, change in enumerate(changes)]


def _pods_and_metrics(
    *,
    count: int,
    requests_milli: list[int | None],
    levels_milli: list[int],
    case: dict[str, Any],
    metric_names: list[str] | None = None,
) -> tuple[list[Pod], dict[str, PodMetric]]:
    """Pods with two containers each, as the Go tests build them; ``requests_milli``/``levels_milli`` per container."""
    readiness = case.get("pod_readiness") or []
    phases = case.get("pod_phase") or []
    starts = case.get("pod_start") or []
    deletions = case.get("pod_deletion") or []
    pods = []
    for i in range(count):
        request = requests_milli[i] if i < len(requests_milli) else None
        start = START[starts[i]] if i < len(starts) else ZERO_TIME
        pods.append(
            Pod(
                name=f"test-pod-{i}",
                containers=(
                    Container("container1", {CPU: request}),
                    Container("container2", {CPU: request}),
                ),
                phase=phases[i] if i < len(phases) else "Running",
                being_deleted=deletions[i] if i < len(deletions) else False,
                ready=(readiness[i] if i < len(readiness) else "True") == "True",
                start_seconds=start,
                ready_transition_seconds=start,
            )
        )
    names = metric_names or [f"test-pod-{i}" for i in range(len(levels_milli))]
    metrics = {
        name: PodMetric({"container1": level, "container2": level}, timestamp_seconds=NOW, window_seconds=60.0)
        for name, level in zip(names, levels_milli, strict=False)
    }
    return pods, metrics


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["test"] for c in cases]


REPLICA_CALCULATOR = _in_scope("replica_calculator")


@pytest.mark.parametrize("case", REPLICA_CALCULATOR, ids=_ids(REPLICA_CALCULATOR))
def test_replica_calculator_matches_kubernetes(case: dict[str, Any]) -> None:
    requests = [round(c * 1000) for c in case["requests_cores"]]
    count = max(case["current_replicas"], len(case.get("pod_phase") or []))
    pods, metrics = _pods_and_metrics(
        count=count, requests_milli=list(requests), levels_milli=case["levels_milli"], case=case,
        metric_names=case.get("pod_names_for_metrics"),
    )
    call = {
        "current_replicas": case["current_replicas"],
        "target_utilization_percent": case["target_utilization"],
        "resource": CPU,
        "pods": pods,
        "metrics": metrics,
        "now_seconds": NOW,
        "config": TEST_CALCULATOR,
    }
    if case["expected_replicas"] is None:
        with pytest.raises(MetricError, match=re.escape(case["expected_error"])):
            resource_replicas(**call)
        return
    proposal = resource_replicas(**call)
    assert proposal.replicas == case["expected_replicas"]
    assert proposal.utilization_percent == case["expected_utilization"]
    assert proposal.raw_average_milli == case["expected_raw_value_milli"]


HORIZONTAL = _in_scope("horizontal_controller")


def _parse_condition(text: str) -> tuple[str, str, str]:
    kind, rest = text.split("=", 1)
    status, reason = rest.split("/", 1)
    return kind, status, reason


def _expected_conditions(case: dict[str, Any]) -> dict[str, tuple[str, str]] | None:
    """The whole condition list the Go test expects, as ``{type: (status, reason)}``; None if it checks none."""
    name = case["test"]
    if name in NO_CONDITIONS_CHECKED:
        return None
    if name in OWN_CONDITIONS:
        return OWN_CONDITIONS[name]
    expected = dict(STATUS_OK)
    if name in READY_FOR_NEW_SCALE:
        expected["AbleToScale"] = ("True", "ReadyForNewScale")
    if text := case.get("expected_conditions"):
        kind, status, reason = _parse_condition(text)
        expected[kind] = (status, reason)
    if limiting := case.get("expected_limiting_reason"):
        expected["ScalingLimited"] = ("True", limiting)
    return expected


@pytest.mark.parametrize("case", HORIZONTAL, ids=_ids(HORIZONTAL))
def test_horizontal_controller_matches_kubernetes(case: dict[str, Any]) -> None:
    per_pod_requests = case.get("cpu_requests_cores")
    if per_pod_requests is None:
        count, per_pod_requests = case["status_replicas"], [1.0] * case["status_replicas"]
    else:
        count = len(per_pod_requests)
    # Per pod values are split evenly over the two containers.
    pods, metrics = _pods_and_metrics(
        count=count,
        requests_milli=[round(c * 1000) // 2 for c in per_pod_requests],
        levels_milli=[level // 2 for level in case["reported_levels_milli"]],
        case=case,
    )
    targets: list[MetricTarget] = []
    if case.get("cpu_target"):
        targets.append(MetricTarget("Resource", CPU, case["cpu_target"]))
    if container := case.get("container_resource"):
        targets.append(MetricTarget("ContainerResource", CPU, container["target_utilization"], container["container"]))
    if case.get("extra_metric"):
        targets.append(MetricTarget("Unsupported"))
    up, down = case.get("scale_up_rules"), case.get("scale_down_rules")
    behavior = None
    if up is not None or down is not None:
        behavior = Behavior.of(
            scale_up=_generated(None if up is None else [up["pods"], up["pods_period"], up["percent"],
                                                         up["percent_period"], up["stabilization_window"]]),
            scale_down=_generated(None if down is None else [down["pods"], down["pods_period"], down["percent"],
                                                             down["percent_period"], down["stabilization_window"]]),
        )
    spec = HpaSpec(case["min_replicas"], case["max_replicas"], tuple(targets), behavior)
    controller = HorizontalController(ControllerConfig(calculator=TEST_CALCULATOR))
    recs = case.get("recommendations")
    if recs == "empty":
        controller.recommendations = []
    elif isinstance(recs, list):
        controller.recommendations = [Recommendation(r, NOW + _seconds(age)) for r, age in recs]

    result = controller.reconcile(
        spec=spec, spec_replicas=case["spec_replicas"], pods=pods, metrics={CPU: metrics}, now_seconds=NOW
    )

    assert result.desired_replicas == case["expected_desired_replicas"]
    if (expected := _expected_conditions(case)) is not None:
        got = {kind: (condition.status, condition.reason) for kind, condition in controller.conditions.items()}
        assert got == expected
    if case.get("cpu_current") is not None:
        assert result.utilization_percent[CPU] == case["cpu_current"]


def _five_pods_at_cpu_milli(levels: list[int]) -> tuple[list[Pod], dict[str, PodMetric]]:
    pods = [Pod(f"p{i}", (Container("app", {CPU: 1000, MEMORY: 1000}),), start_seconds=ZERO_TIME)
            for i in range(len(levels))]
    return pods, {f"p{i}": PodMetric({"app": level}, NOW, 15.0) for i, level in enumerate(levels)}


@pytest.mark.parametrize(("cpu_levels", "expected"), [([100, 300, 500, 250, 250], 5), ([900] * 5, 9)])
def test_no_scale_down_while_one_metric_fails(cpu_levels: list[int], expected: int) -> None:
    """Kubernetes 1.21+ (kubernetes/kubernetes#99514): with the memory metric failing, CPU alone may scale
    up but not down, and the skipped scale-down records no recommendation."""
    pods, cpu = _five_pods_at_cpu_milli(cpu_levels)
    spec = HpaSpec(2, 10, (MetricTarget("Resource", CPU, 50), MetricTarget("Resource", MEMORY, 80)), None)
    controller = HorizontalController(ControllerConfig(calculator=TEST_CALCULATOR))
    controller.recommendations = []
    result = controller.reconcile(spec=spec, spec_replicas=5, pods=pods, metrics={CPU: cpu}, now_seconds=NOW)
    assert result.desired_replicas == expected
    if expected == 5:  # CPU alone says 3 (28% of a 50% target)
        assert controller.recommendations == []
        assert controller.conditions["ScalingActive"].status == "False"
    else:  # CPU alone says 9 (90% of a 50% target): a scale-up goes ahead without the memory metric
        assert controller.conditions["ScalingActive"].reason == "ValidMetricFound"


SCALING_RULES = _in_scope("scaling_rules")


@pytest.mark.parametrize("case", SCALING_RULES, ids=_ids(SCALING_RULES))
def test_scaling_rules_match_kubernetes(case: dict[str, Any]) -> None:
    behavior = Behavior.of(scale_up=_rules(case["scale_up_rules"]), scale_down=_rules(case["scale_down_rules"]))
    replicas, condition = convert_desired_replicas_with_behavior_rate(
        current_replicas=case["current_replicas"],
        desired_replicas=case["prenormalized_desired_replicas"],
        min_replicas=case["min_replicas"],
        max_replicas=case["max_replicas"],
        behavior=behavior,
        up_events=_uniform_events(case["scale_up_events"]),
        down_events=_uniform_events(case["scale_down_events"]),
        now_seconds=NOW,
    )
    assert (replicas, condition) == (case["expected_replicas"], case["expected_condition"])


SCALE_LIMITS = CASES["scale_limit_functions"]


@pytest.mark.parametrize("case", SCALE_LIMITS, ids=_ids(SCALE_LIMITS))
def test_scale_limit_functions_match_kubernetes(case: dict[str, Any]) -> None:
    rules = Behavior.of(scale_up=_rules(case["rules"]), scale_down=_rules(case["rules"]))
    events = [ScaleEvent(e[0], NOW + _seconds(e[1])) for e in case["events"]]
    if case["fn"] == "calculateScaleUpLimitWithScalingRules":
        limit = scale_up_limit(case["current_replicas"], up_events=events, down_events=[], rules=rules.scale_up,
                               now_seconds=NOW)
    else:
        limit = scale_down_limit(case["current_replicas"], up_events=[], down_events=events,
                                 rules=rules.scale_down, now_seconds=NOW)
    assert limit == case["expected"]


LEGACY = CASES["convert_desired_replicas_with_rules_legacy"]


@pytest.mark.parametrize("case", LEGACY, ids=[f"{c['current']}->{c['desired']}" for c in LEGACY])
def test_legacy_conversion_matches_kubernetes(case: dict[str, Any]) -> None:
    # The Go test builds its controller with scaleUpLimitFactor 8; the case's text gives that result (24).
    factor = 8.0 if isinstance(case["expected"], str) else 2.0
    expected = 24 if isinstance(case["expected"], str) else case["expected"]
    assert convert_desired_replicas_with_rules(
        current_replicas=case["current"], desired_replicas=case["desired"], min_replicas=case["min"],
        max_replicas=case["max"], scale_up_limit_factor=factor,
    ) == (expected, case["condition"])


def test_production_scale_up_limit_without_behavior_is_double_or_four() -> None:
    assert convert_desired_replicas_with_rules(
        current_replicas=3, desired_replicas=1000, min_replicas=1, max_replicas=2000
    ) == (6, "ScaleUpLimit")
    assert convert_desired_replicas_with_rules(
        current_replicas=1, desired_replicas=1000, min_replicas=1, max_replicas=2000
    ) == (4, "ScaleUpLimit")


STAB_LEGACY = CASES["stabilization_legacy"]["cases"]


@pytest.mark.parametrize("case", STAB_LEGACY, ids=[c["name"] for c in STAB_LEGACY])
def test_legacy_stabilization_matches_kubernetes(case: dict[str, Any]) -> None:
    log = [Recommendation(r["replicas"], NOW - 60 * r["age_minutes"]) for r in case["recommendations"]]
    result = stabilize_recommendation(log, prenormalized=case["prenormalized"], window_seconds=300, now_seconds=NOW)
    assert result == case["expected"]
    assert len(log) == case["expected_log_length"]


STAB = CASES["stabilization_with_behaviors"]["cases"]


@pytest.mark.parametrize("case", STAB, ids=[c["name"] for c in STAB])
def test_stabilization_with_behaviors_matches_kubernetes(case: dict[str, Any]) -> None:
    log = [Recommendation(r["replicas"], NOW - 60 * r["age_minutes"]) for r in case["recommendations"]]
    result = stabilize_recommendation_with_behaviors(
        log, current_replicas=case["current"], prenormalized=case["prenormalized"],
        up_window_seconds=case.get("up_window_s", 0), down_window_seconds=case.get("down_window_s", 0),
        now_seconds=NOW,
    )
    assert result == case["expected"]
    assert [r.replicas for r in log] == case["expected_stored"]


STORE = CASES["store_scale_events"]["cases"]


@pytest.mark.parametrize("direction", [+5, -5])
@pytest.mark.parametrize("case", STORE, ids=[c["name"] for c in STORE])
def test_scale_event_bookkeeping_matches_kubernetes(case: dict[str, Any], direction: int) -> None:
    prev = [ScaleEvent(change, NOW + _seconds(age)) for change, age in case["prev"]]
    rules = _generated(case["rules"])
    behavior = None if rules is None else Behavior.of(scale_up=rules, scale_down=rules)
    up: list[ScaleEvent] = prev if direction > 0 else []
    down: list[ScaleEvent] = prev if direction < 0 else []
    window_events = up or down
    assert replicas_change_per_period(60, window_events, now_seconds=NOW) == case["expected_change_60s"]
    store_scale_event(behavior=behavior, up_events=up, down_events=down, previous_replicas=10,
                      new_replicas=10 + direction, now_seconds=NOW)
    stored = up if direction > 0 else down
    assert [[e.replica_change, e.outdated] for e in stored] == case["new_events"]


# Every section of the file that holds cases, with the cases this module parametrizes from it.
RUN: dict[str, list[dict[str, Any]]] = {
    "replica_calculator": REPLICA_CALCULATOR,
    "horizontal_controller": HORIZONTAL,
    "scaling_rules": SCALING_RULES,
    "scale_limit_functions": SCALE_LIMITS,
    "convert_desired_replicas_with_rules_legacy": LEGACY,
    "stabilization_legacy": STAB_LEGACY,
    "stabilization_with_behaviors": STAB,
    "store_scale_events": STORE,
}


def _file_cases(section: str) -> list[dict[str, Any]]:
    held = CASES[section]
    return list(held["cases"] if isinstance(held, dict) else held)


def _name(case: dict[str, Any]) -> str:
    return str(case.get("test", case.get("name")))


def test_cases_run_plus_left_out_are_exactly_the_cases_in_the_file() -> None:
    sections = {key for key, held in CASES.items() if key not in ("sources", "conventions")}
    assert sections == set(RUN), "a section of hpa_cases.json is not run (or RUN names one the file lacks)"
    in_file = [_name(case) for section in RUN for case in _file_cases(section)]
    run = [_name(case) for cases in RUN.values() for case in cases]
    stale = sorted(set(LEFT_OUT) - set(in_file))
    assert not stale, f"LEFT_OUT names cases that are not in hpa_cases.json: {stale}"
    assert all(in_file.count(name) == 1 for name in LEFT_OUT), "a left-out name must identify one case"
    assert not set(run) & set(LEFT_OUT), "a left-out case is also run"
    assert sorted(run + list(LEFT_OUT)) == sorted(in_file), "a case is neither run nor listed in LEFT_OUT"


CUSTOM_METRIC_KEYS = ("pods_metric", "object_metric", "external_metric")
RUNNABLE_KINDS = ("resource", "none")


def _metric_kind(section: str, case: dict[str, Any]) -> str:
    """What a case scales on: "resource" (CPU/memory utilisation), a custom metric kind, or "none" for the
    sections that call one normalisation function with no metric at all."""
    if section == "replica_calculator":
        return str(case["kind"])  # every case of this section names its kind: no default
    if section == "horizontal_controller":
        custom = [key for key in CUSTOM_METRIC_KEYS if key in case]
        return "+".join(custom) if custom else "resource"
    return "none"


def _why_left_out(section: str, case: dict[str, Any]) -> str:
    """The reason the case itself gives for leaving it out, or "" if the model can run it."""
    if _metric_kind(section, case) not in RUNNABLE_KINDS:
        return CUSTOM_METRICS
    if case.get("skipped_in_source"):
        return SKIPPED_IN_SOURCE
    if case.get("extra_metric") and case["expected_desired_replicas"] < case["spec_replicas"]:
        return SINCE_1_21  # a scale-down expected although one metric is invalid
    if "update call fails" in case.get("note", ""):
        return API_FAILURE
    return ""


def test_every_case_run_is_of_a_kind_the_model_runs() -> None:
    assert all("kind" in case for case in CASES["replica_calculator"]), "a replica_calculator case names no kind"
    wrong = [(section, _name(case), _metric_kind(section, case), _why_left_out(section, case))
             for section, cases in RUN.items() for case in cases if _why_left_out(section, case)]
    assert not wrong, f"cases run that the model cannot reproduce: {wrong}"


def test_the_cases_left_out_are_exactly_those_the_model_cannot_run_and_for_their_reason() -> None:
    cannot = {_name(case): why
              for section in RUN for case in _file_cases(section) if (why := _why_left_out(section, case))}
    assert sorted(LEFT_OUT) == sorted(cannot), "LEFT_OUT is not the set of cases the model cannot run"
    wrong = {name: LEFT_OUT[name] for name, why in cannot.items() if not LEFT_OUT[name].startswith(why)}
    assert not wrong, f"left out for a reason the case does not show: {wrong}"


def test_the_condition_tables_name_horizontal_cases_that_run() -> None:
    run = {case["test"] for case in HORIZONTAL}
    named = set(OWN_CONDITIONS) | READY_FOR_NEW_SCALE | NO_CONDITIONS_CHECKED
    assert named <= run, f"not a horizontal_controller case that runs: {sorted(named - run)}"
    assert not READY_FOR_NEW_SCALE & set(OWN_CONDITIONS), "a case both lists its own conditions and overrides statusOk"
