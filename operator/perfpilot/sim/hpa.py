"""A model of Kubernetes' HorizontalPodAutoscaler controller (``pkg/controller/podautoscaler``).

It follows the controller function by function so that the cases transcribed from Kubernetes' own tests
(``tests/data/hpa_cases.json``) run against it unchanged:

- ``resource_replicas`` is ``ReplicaCalculator.GetResourceReplicas``: utilisation as an *integer* percent
  of the summed requests, tolerance 0.1, missing pods counted at 100% of their request on a scale-down and
  0% on a scale-up, unready pods (and pods still in the CPU initialisation period) counted at 0% on a
  scale-up, and no change when those fillers would flip the direction.
- ``HorizontalController.reconcile`` is ``reconcileAutoscaler``: min/max short-cuts, every metric's
  proposal with invalid metrics skipped unless all are invalid, then either the legacy normalisation (no
  ``behavior``: 5-minute downscale stabilisation and the ``max(2 x current, 4)`` scale-up cap) or the
  ``behavior`` path (``stabilizeRecommendationWithBehaviors`` and ``convertDesiredReplicasWithBehaviorRate``
  over the stored scale events), and the scale-event bookkeeping of ``storeScaleEvent``. ``conditions`` are
  the status conditions it sets, AbleToScale ending at SucceededGetScale, the normalisation's reason or, after
  a rescale, SucceededRescale.

Time is simulated: every function takes ``now_seconds`` instead of reading a clock. Comparisons keep the
controller's strictness (``After``/``Before`` are strict), because the cases pin events to period edges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from perfpilot.api.status import ScalingPolicy, ScalingRules
from perfpilot.tuning.values import compute_policy_limit

# Defaults of kube-controller-manager's flags; tests may pass their own (the cases use 120 s and 10 s).
DEFAULT_TOLERANCE = 0.1
DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS = 300.0
DEFAULT_INITIAL_READINESS_DELAY_SECONDS = 30.0
DEFAULT_DOWNSCALE_STABILIZATION_SECONDS = 300.0
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0

CPU = "cpu"
MEMORY = "memory"

PodPhase = Literal["Running", "Pending", "Failed", "Succeeded"]


class MetricError(Exception):
    """A metric could not be turned into a replica proposal (the controller's ``err`` return)."""

    def __init__(self, message: str, *, reason: str = "FailedGetResourceMetric") -> None:
        super().__init__(message)
        self.reason = reason  # the ScalingActive=False condition reason the controller would set


# The default behaviour the API server fills in for a direction the user left out of ``behavior``
# (``GenerateHPAScaleUpRules`` / ``GenerateHPAScaleDownRules``). The scale-down window is left unset: the
# controller fills it from its own --horizontal-pod-autoscaler-downscale-stabilization flag.
DEFAULT_SCALE_UP_RULES = ScalingRules(
    stabilization_window_seconds=0,
    select_policy="Max",
    policies=[
        ScalingPolicy(type="Pods", value=4, period_seconds=15),
        ScalingPolicy(type="Percent", value=100, period_seconds=15),
    ],
)
DEFAULT_SCALE_DOWN_RULES = ScalingRules(
    stabilization_window_seconds=None,
    select_policy="Max",
    policies=[ScalingPolicy(type="Percent", value=100, period_seconds=15)],
)


@dataclass(frozen=True, slots=True)
class Rules:
    """One direction of a defaulted ``behavior``: plain values, cheap to read in the sync loop."""

    stabilization_window_seconds: float
    select_policy: str  # Max | Min | Disabled
    policies: tuple[tuple[str, int, float], ...]  # (Pods|Percent, value, period seconds)

    @property
    def longest_period_seconds(self) -> float:
        return max((period for _, _, period in self.policies), default=0.0)


def default_rules(
    given: ScalingRules | None, *, fallback: ScalingRules, controller_window_seconds: float
) -> Rules:
    """``GenerateHPAScale{Up,Down}Rules`` then ``maybeInitScaleDownStabilizationWindow``: unset fields of
    a direction take the default's, and an unset window takes the controller's flag."""
    source = given if given is not None else fallback
    policies = source.policies if source.policies else fallback.policies
    select = source.select_policy or "Max"
    window = source.stabilization_window_seconds
    if window is None:
        window = fallback.stabilization_window_seconds
    return Rules(
        stabilization_window_seconds=float(controller_window_seconds if window is None else window),
        select_policy=select,
        policies=tuple((p.type, p.value, float(p.period_seconds)) for p in policies),
    )


@dataclass(frozen=True, slots=True)
class Behavior:
    """``spec.behavior`` after defaulting; ``HpaSpec.behavior = None`` is the legacy (no behaviour) path."""

    scale_up: Rules
    scale_down: Rules

    @classmethod
    def of(
        cls,
        *,
        scale_up: ScalingRules | None,
        scale_down: ScalingRules | None,
        downscale_stabilization_seconds: float = DEFAULT_DOWNSCALE_STABILIZATION_SECONDS,
    ) -> Behavior:
        return cls(
            scale_up=default_rules(scale_up, fallback=DEFAULT_SCALE_UP_RULES, controller_window_seconds=0.0),
            scale_down=default_rules(
                scale_down,
                fallback=DEFAULT_SCALE_DOWN_RULES,
                controller_window_seconds=downscale_stabilization_seconds,
            ),
        )


@dataclass(frozen=True, slots=True)
class MetricTarget:
    """One entry of ``spec.metrics``. ``Unsupported`` stands for any source the model cannot read (a
    custom metric type, a failing external query): the controller treats it as an invalid metric."""

    kind: Literal["Resource", "ContainerResource", "Unsupported"]
    resource: str = CPU
    target_utilization_percent: int | None = None
    container: str = ""


@dataclass(frozen=True, slots=True)
class HpaSpec:
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricTarget, ...]
    behavior: Behavior | None = None


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    requests: Mapping[str, int | None]  # resource -> milli-units (millicores; milli-bytes for memory)


@dataclass(frozen=True, slots=True)
class Pod:
    """What the controller's pod lister returns about one pod."""

    name: str
    containers: tuple[Container, ...]
    phase: PodPhase = "Running"
    being_deleted: bool = False
    ready: bool = True
    start_seconds: float | None = None  # None: no StartTime, which counts as unready for CPU
    ready_transition_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class PodMetric:
    """One pod's sample from the resource metrics API (metrics-server)."""

    usage_by_container: Mapping[str, int]  # milli-units, as the controller's MilliValue()
    timestamp_seconds: float
    window_seconds: float = 60.0

    def value(self, container: str) -> int:
        if container:
            return self.usage_by_container.get(container, 0)
        return sum(self.usage_by_container.values())


@dataclass(frozen=True, slots=True)
class ReplicaProposal:
    replicas: int
    utilization_percent: int
    raw_average_milli: int


@dataclass(frozen=True, slots=True)
class CalculatorConfig:
    tolerance: float = DEFAULT_TOLERANCE
    cpu_initialization_period_seconds: float = DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS
    initial_readiness_delay_seconds: float = DEFAULT_INITIAL_READINESS_DELAY_SECONDS


def _group_pods(
    pods: Sequence[Pod],
    metrics: Mapping[str, PodMetric],
    *,
    resource: str,
    config: CalculatorConfig,
    now_seconds: float,
) -> tuple[int, set[str], set[str], set[str]]:
    """``groupPods``: ready count and the unready, missing and ignored pod names."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        if pod.being_deleted or pod.phase == "Failed":
            ignored.add(pod.name)
            continue
        if pod.phase == "Pending":
            unready.add(pod.name)
            continue
        metric = metrics.get(pod.name)
        if metric is None:
            missing.add(pod.name)
            continue
        if resource == CPU:
            if pod.start_seconds is None:
                is_unready = True
            elif pod.start_seconds + config.cpu_initialization_period_seconds > now_seconds:
                # Still initialising: a sample taken before one full metric window after the readiness
                # transition may include start-up CPU, so it is not trusted.
                is_unready = (not pod.ready) or (
                    metric.timestamp_seconds < pod.ready_transition_seconds + metric.window_seconds
                )
            else:
                # Unready now and never ready since start: ignored; ready-then-unready pods still count.
                is_unready = (not pod.ready) and (
                    pod.start_seconds + config.initial_readiness_delay_seconds > pod.ready_transition_seconds
                )
            if is_unready:
                unready.add(pod.name)
                continue
        ready += 1
    return ready, unready, missing, ignored


def _pod_requests(pods: Sequence[Pod], *, resource: str, container: str) -> dict[str, int]:
    """``calculatePodRequests``: every (selected) container must have a request."""
    requests: dict[str, int] = {}
    for pod in pods:
        total = 0
        for c in pod.containers:
            if container and c.name != container:
                continue
            request = c.requests.get(resource)
            if request is None:
                raise MetricError(f"missing request for {resource} in container {c.name} of Pod {pod.name}")
            total += request
        requests[pod.name] = total
    return requests


def _utilization_ratio(
    values: Mapping[str, int], requests: Mapping[str, int], target_percent: int
) -> tuple[float, int, int]:
    """``GetResourceUtilizationRatio``; note the integer utilisation the ratio is taken from."""
    metrics_total = 0
    requests_total = 0
    entries = 0
    for name, value in values.items():
        request = requests.get(name)
        if request is None:
            continue  # a metric for a pod the lister does not know: extraneous
        metrics_total += value
        requests_total += request
        entries += 1
    if requests_total == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = (metrics_total * 100) // requests_total
    return utilization / target_percent, utilization, metrics_total // entries


def resource_replicas(
    *,
    current_replicas: int,
    target_utilization_percent: int,
    resource: str,
    pods: Sequence[Pod],
    metrics: Mapping[str, PodMetric],
    now_seconds: float,
    container: str = "",
    config: CalculatorConfig = CalculatorConfig(),
) -> ReplicaProposal:
    """``GetResourceReplicas`` for a Resource or ContainerResource utilisation target."""
    if not metrics:
        raise MetricError(f"unable to get metrics for resource {resource}: no metrics returned from resource "
                          "metrics API")
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    ready_count, unready, missing, ignored = _group_pods(
        pods, metrics, resource=resource, config=config, now_seconds=now_seconds
    )
    values = {name: m.value(container) for name, m in metrics.items() if name not in ignored and name not in unready}
    if not values:
        raise MetricError("did not receive metrics for any ready pods")
    requests = _pod_requests(pods, resource=resource, container=container)
    ratio, utilization, raw = _utilization_ratio(values, requests, target_utilization_percent)

    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= config.tolerance:
            return ReplicaProposal(current_replicas, utilization, raw)
        return ReplicaProposal(math.ceil(ratio * ready_count), utilization, raw)

    if missing:
        if ratio < 1.0:
            # On a scale-down a pod without metrics is assumed busy: at its request (or the target above 100%).
            fallback = max(100, target_utilization_percent)
            for name in missing:
                values[name] = requests[name] * fallback // 100
        elif ratio > 1.0:
            for name in missing:
                values[name] = 0
    if scale_up_with_unready:
        for name in unready:
            values[name] = 0

    new_ratio, _, _ = _utilization_ratio(values, requests, target_utilization_percent)
    if (
        abs(1.0 - new_ratio) <= config.tolerance
        or (ratio < 1.0 < new_ratio)
        or (ratio > 1.0 > new_ratio)
    ):
        return ReplicaProposal(current_replicas, utilization, raw)
    new_replicas = math.ceil(new_ratio * len(values))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (new_ratio > 1.0 and new_replicas < current_replicas):
        return ReplicaProposal(current_replicas, utilization, raw)
    return ReplicaProposal(new_replicas, utilization, raw)


@dataclass(slots=True)
class Recommendation:
    replicas: int
    at_seconds: float


@dataclass(slots=True)
class ScaleEvent:
    replica_change: int
    at_seconds: float
    outdated: bool = False


@dataclass(frozen=True, slots=True)
class Condition:
    status: Literal["True", "False"]
    reason: str


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    calculator: CalculatorConfig = CalculatorConfig()
    downscale_stabilization_seconds: float = DEFAULT_DOWNSCALE_STABILIZATION_SECONDS
    scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR
    scale_up_limit_minimum: float = SCALE_UP_LIMIT_MINIMUM


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    desired_replicas: int
    rescale: bool
    utilization_percent: Mapping[str, int]  # per resource metric that produced a proposal
    error: str = ""


def replicas_change_per_period(period_seconds: float, events: Sequence[ScaleEvent], *, now_seconds: float) -> int:
    """``getReplicasChangePerPeriod``: the sum of changes strictly inside the last period."""
    cutoff = now_seconds - period_seconds
    return sum(e.replica_change for e in events if e.at_seconds > cutoff)


def scale_up_limit(
    current_replicas: int,
    *,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    rules: Rules,
    now_seconds: float,
) -> int:
    """``calculateScaleUpLimitWithScalingRules``: each policy's allowance from the replica count at the
    start of its period (changes in both directions inside the period undone), then Max or Min of them."""
    if rules.select_policy == "Disabled":
        return current_replicas
    use_min = rules.select_policy == "Min"
    result = math.inf if use_min else -math.inf
    for kind, value, period in rules.policies:
        added = replicas_change_per_period(period, up_events, now_seconds=now_seconds)
        deleted = replicas_change_per_period(period, down_events, now_seconds=now_seconds)
        start = current_replicas - added + deleted
        proposed = compute_policy_limit(kind, value, period_start=start, scale_up=True)
        result = min(result, proposed) if use_min else max(result, proposed)
    return int(result)


def scale_down_limit(
    current_replicas: int,
    *,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    rules: Rules,
    now_seconds: float,
) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the mirror image; Max picks the lowest floor."""
    if rules.select_policy == "Disabled":
        return current_replicas
    use_min = rules.select_policy == "Min"
    result = -math.inf if use_min else math.inf
    for kind, value, period in rules.policies:
        added = replicas_change_per_period(period, up_events, now_seconds=now_seconds)
        deleted = replicas_change_per_period(period, down_events, now_seconds=now_seconds)
        start = current_replicas - added + deleted
        proposed = compute_policy_limit(kind, value, period_start=start, scale_up=False)
        result = max(result, proposed) if use_min else min(result, proposed)
    return int(result)


def convert_desired_replicas_with_rules(
    *,
    current_replicas: int,
    desired_replicas: int,
    min_replicas: int,
    max_replicas: int,
    scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR,
    scale_up_limit_minimum: float = SCALE_UP_LIMIT_MINIMUM,
) -> tuple[int, str]:
    """``convertDesiredReplicasWithRules`` (no behaviour): at most ``max(factor x current, minimum)``."""
    # int32(math.Max(...)) truncates.
    up_limit = int(max(scale_up_limit_factor * current_replicas, scale_up_limit_minimum))
    if max_replicas > up_limit:
        maximum, condition = up_limit, "ScaleUpLimit"
    else:
        maximum, condition = max_replicas, "TooManyReplicas"
    if desired_replicas < min_replicas:
        return min_replicas, "TooFewReplicas"
    if desired_replicas > maximum:
        return maximum, condition
    return desired_replicas, "DesiredWithinRange"


def convert_desired_replicas_with_behavior_rate(
    *,
    current_replicas: int,
    desired_replicas: int,
    min_replicas: int,
    max_replicas: int,
    behavior: Behavior,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    now_seconds: float,
) -> tuple[int, str]:
    """``convertDesiredReplicasWithBehaviorRate``: the policies' rate limits, then min/max."""
    if desired_replicas > current_replicas:
        limit = scale_up_limit(
            current_replicas, up_events=up_events, down_events=down_events, rules=behavior.scale_up,
            now_seconds=now_seconds,
        )
        limit = max(limit, current_replicas)  # never below current until old events expire
        if max_replicas > limit:
            maximum, reason = limit, "ScaleUpLimit"
        else:
            maximum, reason = max_replicas, "TooManyReplicas"
        if desired_replicas > maximum:
            return maximum, reason
    elif desired_replicas < current_replicas:
        limit = scale_down_limit(
            current_replicas, up_events=up_events, down_events=down_events, rules=behavior.scale_down,
            now_seconds=now_seconds,
        )
        limit = min(limit, current_replicas)
        if min_replicas < limit:
            minimum, reason = limit, "ScaleDownLimit"
        else:
            minimum, reason = min_replicas, "TooFewReplicas"
        if desired_replicas < minimum:
            return minimum, reason
    return desired_replicas, "DesiredWithinRange"


def stabilize_recommendation(
    recommendations: list[Recommendation], *, prenormalized: int, window_seconds: float, now_seconds: float
) -> int:
    """``stabilizeRecommendation`` (no behaviour): the highest recommendation inside the window; the new
    one replaces the last sample older than the window, or is appended."""
    highest = prenormalized
    old_index = -1
    cutoff = now_seconds - window_seconds
    for index, rec in enumerate(recommendations):
        if rec.at_seconds < cutoff:
            old_index = index
        elif rec.replicas > highest:
            highest = rec.replicas
    entry = Recommendation(prenormalized, now_seconds)
    if old_index >= 0:
        recommendations[old_index] = entry
    else:
        recommendations.append(entry)
    return highest


def stabilize_recommendation_with_behaviors(
    recommendations: list[Recommendation],
    *,
    current_replicas: int,
    prenormalized: int,
    up_window_seconds: float,
    down_window_seconds: float,
    now_seconds: float,
) -> int:
    """``stabilizeRecommendationWithBehaviors``: the lowest recommendation of the up window is a floor,
    the highest of the down window a ceiling, and the current count is clamped between them."""
    up_cutoff = now_seconds - up_window_seconds
    down_cutoff = now_seconds - down_window_seconds
    up = prenormalized
    down = prenormalized
    old_index = -1
    for index, rec in enumerate(recommendations):
        if rec.at_seconds > up_cutoff:
            up = min(up, rec.replicas)
        if rec.at_seconds > down_cutoff:
            down = max(down, rec.replicas)
        if rec.at_seconds < up_cutoff and rec.at_seconds < down_cutoff:
            old_index = index
    recommendation = max(current_replicas, up)
    recommendation = min(recommendation, down)
    entry = Recommendation(prenormalized, now_seconds)
    if old_index >= 0:
        recommendations[old_index] = entry
    else:
        recommendations.append(entry)
    return recommendation


def store_scale_event(
    *,
    behavior: Behavior | None,
    up_events: list[ScaleEvent],
    down_events: list[ScaleEvent],
    previous_replicas: int,
    new_replicas: int,
    now_seconds: float,
) -> None:
    """``storeScaleEvent``: events older than the direction's longest policy period are marked outdated,
    and the new event takes the last outdated slot (or is appended). Without a behaviour nothing is kept."""
    if behavior is None:
        return
    if new_replicas > previous_replicas:
        events, rules, change = up_events, behavior.scale_up, new_replicas - previous_replicas
    else:
        events, rules, change = down_events, behavior.scale_down, previous_replicas - new_replicas
    cutoff = now_seconds - rules.longest_period_seconds
    old_index = -1
    for index, event in enumerate(events):
        if event.at_seconds < cutoff:
            event.outdated = True
        if event.outdated:
            old_index = index
    entry = ScaleEvent(change, now_seconds)
    if old_index >= 0:
        events[old_index] = entry
    else:
        events.append(entry)


@dataclass
class HorizontalController:
    """The controller's memory for ONE HPA: recommendations and scale events (keyed per HPA in Kubernetes)."""

    config: ControllerConfig = field(default_factory=ControllerConfig)
    recommendations: list[Recommendation] | None = None  # None: nothing recorded yet ("nil")
    up_events: list[ScaleEvent] = field(default_factory=list)
    down_events: list[ScaleEvent] = field(default_factory=list)
    conditions: dict[str, Condition] = field(default_factory=dict)

    def _set(self, kind: str, status: Literal["True", "False"], reason: str) -> None:
        self.conditions[kind] = Condition(status, reason)

    def _metric_proposal(
        self,
        target: MetricTarget,
        *,
        spec_replicas: int,
        pods: Sequence[Pod],
        metrics: Mapping[str, Mapping[str, PodMetric]],
        now_seconds: float,
    ) -> ReplicaProposal:
        if target.kind == "Unsupported":
            raise MetricError("invalid metric source type", reason="InvalidMetricSourceType")
        reason = "FailedGetContainerResourceMetric" if target.kind == "ContainerResource" else "FailedGetResourceMetric"
        if target.target_utilization_percent is None:
            raise MetricError("invalid resource metric source: neither a utilization target nor a value target "
                              "was set", reason=reason)
        try:
            return resource_replicas(
                current_replicas=spec_replicas,
                target_utilization_percent=target.target_utilization_percent,
                resource=target.resource,
                pods=pods,
                metrics=metrics.get(target.resource, {}),
                now_seconds=now_seconds,
                container=target.container if target.kind == "ContainerResource" else "",
                config=self.config.calculator,
            )
        except MetricError as error:
            error.reason = reason
            raise

    def reconcile(
        self,
        *,
        spec: HpaSpec,
        spec_replicas: int,
        pods: Sequence[Pod],
        metrics: Mapping[str, Mapping[str, PodMetric]],
        now_seconds: float,
    ) -> ReconcileResult:
        """One ``reconcileAutoscaler`` pass. ``metrics`` maps a resource to its per-pod samples."""
        current = spec_replicas
        # The scale subresource was read (the model's GET cannot fail); a rescale below overrides this.
        self._set("AbleToScale", "True", "SucceededGetScale")
        if self.recommendations is None:
            self.recommendations = [Recommendation(current, now_seconds)]
        utilizations: dict[str, int] = {}
        if current == 0 and spec.min_replicas != 0:
            self._set("ScalingActive", "False", "ScalingDisabled")
            return ReconcileResult(0, False, utilizations)
        if current > spec.max_replicas:
            desired = spec.max_replicas
        elif current < spec.min_replicas:
            desired = spec.min_replicas
        else:
            proposal = 0
            invalid = 0
            first_error: MetricError | None = None
            for target in spec.metrics:
                try:
                    result = self._metric_proposal(
                        target, spec_replicas=spec_replicas, pods=pods, metrics=metrics, now_seconds=now_seconds
                    )
                except MetricError as error:
                    invalid += 1
                    first_error = first_error or error
                    continue
                utilizations[target.resource] = result.utilization_percent
                if proposal == 0 or result.replicas > proposal:
                    proposal = result.replicas
            if invalid >= len(spec.metrics) or (invalid and proposal < current):
                # Every metric failed, or one did and the rest would scale down (the failed one might have
                # said to keep the pods; Kubernetes 1.21+, kubernetes/kubernetes#99514): the condition of
                # the first failure, the scale left alone and no recommendation recorded.
                self._set("ScalingActive", "False", first_error.reason if first_error else "InvalidMetricSourceType")
                return ReconcileResult(current, False, utilizations, error=str(first_error or "no metrics"))
            self._set("ScalingActive", "True", "ValidMetricFound")
            desired = self._normalize(spec, current=current, prenormalized=proposal, now_seconds=now_seconds)
        rescale = desired != current
        if rescale:
            # The scale update succeeds in the model: reconcileAutoscaler then sets AbleToScale=SucceededRescale,
            # replacing the normalisation's ReadyForNewScale/Scale{Up,Down}Stabilized.
            self._set("AbleToScale", "True", "SucceededRescale")
            store_scale_event(
                behavior=spec.behavior, up_events=self.up_events, down_events=self.down_events,
                previous_replicas=current, new_replicas=desired, now_seconds=now_seconds,
            )
        return ReconcileResult(desired if rescale else current, rescale, utilizations)

    def _normalize(self, spec: HpaSpec, *, current: int, prenormalized: int, now_seconds: float) -> int:
        assert self.recommendations is not None
        if spec.behavior is None:
            stabilized = stabilize_recommendation(
                self.recommendations, prenormalized=prenormalized,
                window_seconds=self.config.downscale_stabilization_seconds, now_seconds=now_seconds,
            )
            stabilized_reason = "ScaleDownStabilized"
            desired, reason = convert_desired_replicas_with_rules(
                current_replicas=current, desired_replicas=stabilized, min_replicas=spec.min_replicas,
                max_replicas=spec.max_replicas, scale_up_limit_factor=self.config.scale_up_limit_factor,
                scale_up_limit_minimum=self.config.scale_up_limit_minimum,
            )
        else:
            stabilized = stabilize_recommendation_with_behaviors(
                self.recommendations, current_replicas=current, prenormalized=prenormalized,
                up_window_seconds=spec.behavior.scale_up.stabilization_window_seconds,
                down_window_seconds=spec.behavior.scale_down.stabilization_window_seconds,
                now_seconds=now_seconds,
            )
            stabilized_reason = "ScaleUpStabilized" if prenormalized >= current else "ScaleDownStabilized"
            desired, reason = convert_desired_replicas_with_behavior_rate(
                current_replicas=current, desired_replicas=stabilized, min_replicas=spec.min_replicas,
                max_replicas=spec.max_replicas, behavior=spec.behavior, up_events=self.up_events,
                down_events=self.down_events, now_seconds=now_seconds,
            )
        self._set("AbleToScale", "True", stabilized_reason if stabilized != prenormalized else "ReadyForNewScale")
        self._set("ScalingLimited", "False" if desired == stabilized else "True", reason)
        return desired
