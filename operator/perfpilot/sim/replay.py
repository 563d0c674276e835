"""Replay a trace through the model cluster: perfpilot, static, k8s-default and the oracle in one run.

Each autoscaled run advances the cluster in 15 s ticks (the HPA's sync period), scrapes it like
Prometheus, syncs the HPA model, and, for perfpilot, calls the production ``decide()`` every
``guardrails.interval`` with observations built the way the Prometheus reader builds them, applies what it
returns and keeps the state machine with ``compute_next_state`` — the operator's loop, with the model in
place of the Kubernetes and Prometheus APIs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from perfpilot.api.spec import DEFAULT_PEAK_WINDOW_SECONDS, PerformanceProfileSpec
from perfpilot.api.status import ContainerResources, Edit, PoolSize, Setting, TuningState
from perfpilot.sim.baselines import SLO_QUANTILE, oracle_minute
from perfpilot.sim.cluster import (
    CONTAINER,
    MIB,
    TICK_SECONDS,
    Cluster,
    ClusterParams,
    cpu_request_millicores,
    memory_request_bytes,
    timed_out_latency,
)
from perfpilot.sim.hpa import (
    CPU,
    MEMORY,
    Behavior,
    Container,
    HorizontalController,
    HpaSpec,
    MetricTarget,
    Pod,
    PodMetric,
)
from perfpilot.sim.prometheus import Prometheus, history_points_for
from perfpilot.sim.queueing import LatencyMix, mixture_cdf, mixture_quantile
from perfpilot.sim.scenarios import HpaSettings, Scenario, WorkloadSettings, k8s_default_settings
from perfpilot.sim.trace import Trace
from perfpilot.tuning.engine import decide
from perfpilot.tuning.observations import HpaLive, LiveConfig, PoolLive
from perfpilot.tuning.state import compute_next_state

RUN_NAMES = ("perfpilot", "static", "k8s-default", "oracle")


@dataclass(frozen=True)
class RunMetrics:
    slo_violation_minutes: int
    replica_hours: float
    cpu_core_hours: float
    pool_connection_hours: float
    scale_events: int
    changes: int
    rollbacks: int
    p95_max_seconds: float

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "slo_violation_minutes": self.slo_violation_minutes,
            "replica_hours": round(self.replica_hours, 3),
            "cpu_core_hours": round(self.cpu_core_hours, 3),
            "pool_connection_hours": round(self.pool_connection_hours, 3),
            "scale_events": self.scale_events,
            "changes": self.changes,
            "rollbacks": self.rollbacks,
            "p95_max_seconds": round(self.p95_max_seconds, 4) if math.isfinite(self.p95_max_seconds) else None,
        }


@dataclass
class Timeline:
    """One point per minute, for the plot."""

    at_seconds: list[float] = field(default_factory=list)
    load_per_second: list[float] = field(default_factory=list)
    replicas: list[float] = field(default_factory=list)
    p95_seconds: list[float] = field(default_factory=list)
    cpu_request_cores: list[float] = field(default_factory=list)  # the pods' CPU requests at the minute's end
    # What perfpilot's memory and pool rows act on, beside what it set (NaN where a run has no such thing):
    # the largest pod's working set at the minute's end, and the most pool connections in use in a tick.
    working_set_mib: list[float] = field(default_factory=list)
    pool_in_use: list[float] = field(default_factory=list)
    tuned: dict[str, list[float]] = field(default_factory=dict)  # value name -> per-minute value
    events: list[tuple[float, str]] = field(default_factory=list)  # (time, "change: ..." / "rollback: ...")

    def record_tuned(self, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.tuned.setdefault(name, []).append(value)


@dataclass
class RunResult:
    name: str
    metrics: RunMetrics
    timeline: Timeline
    decisions: list[tuple[float, str]] = field(default_factory=list)  # every applied change and why
    prometheus: Prometheus | None = None  # what the run left in "Prometheus" (a warm-up hands it on)


def build_hpa_spec(hpa: HpaSettings) -> HpaSpec:
    metrics = []
    if hpa.cpu_target_percent is not None:
        metrics.append(MetricTarget("Resource", CPU, hpa.cpu_target_percent))
    if hpa.memory_target_percent is not None:
        metrics.append(MetricTarget("Resource", MEMORY, hpa.memory_target_percent))
    behavior = None
    if hpa.scale_up is not None or hpa.scale_down is not None:
        behavior = Behavior.of(scale_up=hpa.scale_up, scale_down=hpa.scale_down)
    return HpaSpec(hpa.min_replicas, hpa.max_replicas, tuple(metrics), behavior)


def _tuned_values(settings: WorkloadSettings) -> dict[str, float]:
    """Every value perfpilot tunes, as numbers for the plot; NaN for a value that is not set (not 0).

    A behaviour direction is read as the HPA controller runs it, after the API server's defaulting (an unset
    window or policy list is Kubernetes' own; no behaviour at all is the defaults too). Its policies are split
    by kind, each in its own unit: "%/min" is the Percent policies' step per minute and "pods/min" the Pods
    policies' — the largest one (the smallest under selectPolicy Min), NaN when the direction has no policy of
    that kind (a Pods policy is not 0 %/min), 0 in both when the direction is Disabled.
    """
    hpa, res, pool = settings.hpa, settings.resources, settings.pool
    behavior = Behavior.of(scale_up=hpa.scale_up, scale_down=hpa.scale_down)

    def per_minute(policies: tuple[tuple[str, int, float], ...], select: str, kind: str) -> float:
        if select == "Disabled":
            return 0.0
        steps = [value * 60.0 / period for policy_kind, value, period in policies if policy_kind == kind]
        if not steps:
            return math.nan
        return min(steps) if select == "Min" else max(steps)

    def number(value: int | None, *, unit: float = 1.0) -> float:
        return math.nan if value is None else value / unit

    up, down = behavior.scale_up, behavior.scale_down
    return {
        "cpu target %": number(hpa.cpu_target_percent),
        "memory target %": number(hpa.memory_target_percent),
        "scale-up %/min": per_minute(up.policies, up.select_policy, "Percent"),
        "scale-up pods/min": per_minute(up.policies, up.select_policy, "Pods"),
        "scale-up window s": up.stabilization_window_seconds,
        "scale-down %/min": per_minute(down.policies, down.select_policy, "Percent"),
        "scale-down pods/min": per_minute(down.policies, down.select_policy, "Pods"),
        "scale-down window s": down.stabilization_window_seconds,
        "max replicas": float(hpa.max_replicas),
        "cpu request m": number(res.cpu_request_millicores),
        "cpu limit m": number(res.cpu_limit_millicores),
        "memory request MiB": number(res.memory_request_bytes, unit=2**20),
        "memory limit MiB": number(res.memory_limit_bytes, unit=2**20),
        "pool size": float(pool.default_pool_size),
        "pool reserve": float(pool.reserve_pool_size),
    }


def initial_replicas(settings: WorkloadSettings, *, rate_per_second: float, params: ClusterParams) -> int:
    """What the HPA would hold for the first minute's load, so no run starts with a cold-start transient."""
    hpa = settings.hpa
    request = settings.resources.cpu_request_millicores or 1000
    target = hpa.cpu_target_percent or 80
    usage = rate_per_second * params.cpu_demand_seconds * 1000.0
    wanted = math.ceil(usage / (request * target / 100.0)) if usage > 0 else hpa.min_replicas
    return max(hpa.min_replicas, min(hpa.max_replicas, wanted))


def _apply(settings: WorkloadSettings, edit: Edit) -> WorkloadSettings:
    value: Any = edit.to_value
    hpa = settings.hpa
    match edit.setting:
        case Setting.HPA_CPU_TARGET:
            return replace(settings, hpa=replace(hpa, cpu_target_percent=int(value)))
        case Setting.HPA_MEMORY_TARGET:
            return replace(settings, hpa=replace(hpa, memory_target_percent=int(value)))
        case Setting.HPA_SCALE_UP:
            return replace(settings, hpa=replace(hpa, scale_up=value))
        case Setting.HPA_SCALE_DOWN:
            return replace(settings, hpa=replace(hpa, scale_down=value))
        case Setting.HPA_MAX_REPLICAS:
            return replace(settings, hpa=replace(hpa, max_replicas=int(value)))
        case Setting.RESOURCES:
            chosen: list[ContainerResources] = list(value)
            mine = next((c for c in chosen if c.name == CONTAINER), settings.resources)
            return replace(settings, resources=mine)
        case Setting.POOL_SIZE:
            pool: PoolSize = value
            return replace(settings, pool=pool)
    raise ValueError(f"the simulator cannot apply {edit.setting}")


def compute_milli_value(millicores: float) -> int:
    """A pod's CPU usage as the HPA reads it: metrics-server reports whole nanocores and the controller takes
    their Quantity.MilliValue(), which rounds up (769.6m is 770m, and 77% of a 1000m request)."""
    return math.ceil(round(millicores * 1_000_000) / 1_000_000)


class _HpaDriver:
    """Turns the cluster's pods into what the HPA controller reads, and syncs it."""

    def __init__(self) -> None:
        self.controller = HorizontalController()
        self._containers: dict[tuple[int | None, int | None], tuple[Container, ...]] = {}
        # Per pod, the samples metrics-server holds but the HPA has not seen yet: (measured at, CPU, memory).
        self._pending: dict[str, list[tuple[float, int, int]]] = {}
        # The HPA's status.currentReplicas: the scale's replicas as its last sync read them, before it rescaled
        # (not the pods that exist: a rollout's surge pods are not counted).
        self.status_current_replicas: int | None = None

    def _containers_for(self, resources: ContainerResources) -> tuple[Container, ...]:
        # The requests as the API server stores them (a limit without a request is the request too); none is
        # a missing request to the HPA, not a zero one.
        key = (cpu_request_millicores(resources) or None, memory_request_bytes(resources) or None)
        found = self._containers.get(key)
        if found is None:
            found = (Container(CONTAINER, {CPU: key[0], MEMORY: key[1]}),)
            self._containers[key] = found
        return found

    def sync(self, *, cluster: Cluster, spec: HpaSpec, now: float) -> bool:
        self.status_current_replicas = cluster.spec_replicas
        pods = []
        cpu: dict[str, PodMetric] = {}
        memory: dict[str, PodMetric] = {}
        params = cluster.params
        window = params.metrics_window_seconds
        pending: dict[str, list[tuple[float, int, int]]] = {}
        for pod in cluster.pods:
            ready = pod.ready_at_seconds <= now
            pods.append(Pod(
                name=pod.name,
                containers=self._containers_for(pod.resources),
                ready=ready,
                start_seconds=pod.created_seconds,
                ready_transition_seconds=pod.ready_at_seconds if ready else pod.container_started_seconds,
            ))
            age = now - pod.container_started_seconds
            if pod.name not in self._pending and age >= params.metrics_first_sample_seconds:
                # A pod running before this driver's first sync (a run starts on a running service):
                # metrics-server already holds its sample of a tick ago, taken as the usage of now.
                samples = [(now - params.metrics_delay_seconds, compute_milli_value(pod.usage_millicores),
                            int(pod.working_set_bytes))]
            else:
                # A sample taken at (or before) a restart is the old container's: the new one starts afresh.
                samples = [sample for sample in self._pending.get(pod.name, ())
                           if sample[0] > pod.container_started_seconds]
            # The first sample a CPU rate can be made of is measured this long after the container starts,
            # so the HPA sees it metrics_first_sample_seconds after the start.
            first_measured_after = params.metrics_first_sample_seconds - params.metrics_delay_seconds
            if age >= first_measured_after:
                samples.append((now, compute_milli_value(pod.usage_millicores), int(pod.working_set_bytes)))
            visible = [sample for sample in samples if sample[0] <= now - params.metrics_delay_seconds]
            pending[pod.name] = [sample for sample in samples if sample[0] > now - params.metrics_delay_seconds]
            if not visible:
                continue  # no sample yet: a missing pod to the HPA (100% of its request on a scale-down)
            measured_at, cpu_millicores, working_set_bytes = visible[-1]
            cpu[pod.name] = PodMetric({CONTAINER: cpu_millicores}, measured_at, window)
            memory[pod.name] = PodMetric({CONTAINER: working_set_bytes}, measured_at, window)
        self._pending = pending
        result = self.controller.reconcile(
            spec=spec, spec_replicas=cluster.spec_replicas, pods=pods, metrics={CPU: cpu, MEMORY: memory},
            now_seconds=now,
        )
        if result.rescale:
            cluster.scale(result.desired_replicas)
        return result.rescale


def read_live_config(
    *, settings: WorkloadSettings, cluster: Cluster, hpa: _HpaDriver, window_seconds: float
) -> LiveConfig:
    """What the production reader would read from the API server now: the HPA's spec and status (its
    currentReplicas as its last sync read the scale, desiredReplicas what it wrote), the pod template, the
    pool, the OOM kills the pods show over the window and the Deployment's rollout status."""
    now = cluster.now_seconds
    return LiveConfig(
        hpa=HpaLive(
            name="api",
            min_replicas=settings.hpa.min_replicas,
            max_replicas=settings.hpa.max_replicas,
            current_replicas=(hpa.status_current_replicas if hpa.status_current_replicas is not None
                              else cluster.spec_replicas),
            desired_replicas=cluster.spec_replicas,
            cpu_target_percent=settings.hpa.cpu_target_percent,
            memory_target_percent=settings.hpa.memory_target_percent,
            scale_up=settings.hpa.scale_up,
            scale_down=settings.hpa.scale_down,
        ),
        containers=(settings.resources,),
        pool=PoolLive(settings.pool.default_pool_size, settings.pool.reserve_pool_size),
        oom_kills_in_window=cluster.oom_kills_shown(since_seconds=now - window_seconds, until_seconds=now),
        rollout_in_progress=cluster.rollout_in_progress(),
    )


def run_autoscaled(
    *,
    name: str,
    trace: Trace,
    settings: WorkloadSettings,
    params: ClusterParams,
    slo_seconds: float,
    profile: PerformanceProfileSpec | None = None,
    history: Prometheus | None = None,
    kept_window_seconds: float = 0.0,
    scraped: bool = True,
    read_only_at_end: bool = False,
) -> RunResult:
    """One HPA-driven run; with a ``profile``, perfpilot's engine tunes ``settings`` as it goes.

    ``scraped=False`` runs without the model Prometheus (a baseline nobody reads observations of: its
    scrapes and steps are most of a tick's work, and no metric of the run comes from them); perfpilot's run,
    and a warm-up that hands its Prometheus on, need it.
    ``read_only_at_end``: the run's Prometheus is read only once the run is over (a warm-up's, handed on), so
    at the steps before its last ``history_points``, whose values leave the kept signals unread, the latency
    and throttling queries are skipped (``Prometheus.evaluate(peaks_only=True)``). Signals, peaks and
    histories at the end are the same as evaluating every step, provided each kept step has its values
    (it does in a replay: a pod's CFS periods and, once it served, its buckets grow at every scrape).

    ``history`` is the Prometheus of a warm-up replay just before the trace: its peaks and last evaluated
    steps are what a Prometheus that was already running holds when perfpilot is installed.
    ``kept_window_seconds``: the longest window the run's evaluated signals must cover at its end besides the
    profile's own (a warm-up keeps the window of the run it hands over to).
    """
    if profile is not None and not scraped:
        raise ValueError("a tuned run reads its observations from the model Prometheus: scraped must be True")
    if profile is not None and read_only_at_end:
        raise ValueError("a tuned run reads its Prometheus at every interval: read_only_at_end must be False")
    if not scraped and (history is not None or read_only_at_end):
        raise ValueError("an unscraped run has no Prometheus to continue a history in or to be read at its end")
    t0 = trace.start_seconds
    rates = trace.rates_per_second
    cluster = Cluster.started(
        params=params, resources=settings.resources, pool=settings.pool,
        replicas=initial_replicas(settings, rate_per_second=rates[0], params=params), now_seconds=t0,
    )
    window_seconds = profile.guardrails.window.seconds if profile is not None else 0
    prometheus = Prometheus(pool_enabled=True,
                            history_points=history_points_for(max(window_seconds, kept_window_seconds))
                            ) if scraped else None
    if prometheus is not None and history is not None:
        prometheus.continue_from(history)
    hpa = _HpaDriver()
    spec = build_hpa_spec(settings.hpa)
    timeline = Timeline()
    decisions: list[tuple[float, str]] = []
    state = TuningState()
    interval_minutes = 1
    window_seconds = 1800.0
    peak_window_seconds = float(DEFAULT_PEAK_WINDOW_SECONDS)
    if profile is not None:
        interval_minutes = max(1, round(profile.guardrails.interval.seconds / 60))
        window_seconds = float(profile.guardrails.window.seconds)
        peak_window_seconds = float(profile.guardrails.peak_window.seconds)
    timeout_mix = timed_out_latency(params)
    peaks_only_before = len(rates) - prometheus.history_points if prometheus is not None and read_only_at_end else 0

    violations = 0
    pod_seconds = 0.0
    core_seconds = 0.0
    pool_seconds = 0.0
    scale_events = 0
    changes = 0
    rollbacks = 0
    p95_max = 0.0
    last_p95: float | None = None  # where the next minute's p95 is looked for first
    step = trace.step_seconds
    ticks = max(1, round(step / TICK_SECONDS))
    for index, rate in enumerate(rates):
        mixes: list[tuple[LatencyMix, float]] = []
        pool_in_use = 0.0
        for _ in range(ticks):
            tick = cluster.advance(rate_per_second=rate, dt_seconds=step / ticks)
            now = cluster.now_seconds
            if prometheus is not None:
                prometheus.scrape(cluster=cluster, tick=tick, now=now)
            # A tick can fail more than arrived (requests backed up from earlier ticks time out): no
            # negative weight for the ones served.
            mixes.append((tick.latency, max(0.0, tick.requests - tick.failed)))
            if tick.failed > 0:
                mixes.append((timeout_mix, tick.failed))
            dt = step / ticks
            pod_seconds += len(cluster.pods) * dt
            core_seconds += sum(cpu_request_millicores(p.resources) for p in cluster.pods) / 1000.0 * dt
            pool_seconds += tick.pool_servers_open * dt
            pool_in_use = max(pool_in_use, tick.pool_server_active)
            if hpa.sync(cluster=cluster, spec=spec, now=now):
                scale_events += 1
        now = cluster.now_seconds
        if prometheus is not None:
            prometheus.evaluate(now, peaks_only=index < peaks_only_before)

        served = sum(weight for _, weight in mixes)
        p95 = math.nan
        if served > 0:
            # A client sees no request slower than its timeout: one that would be has failed at it. So a
            # request is within the SLO only within the timeout as well (a timed-out one never is, whatever
            # the SLO), and a minute's p95 is at most the timeout.
            timeout = params.request_timeout_seconds
            if mixture_cdf(mixes, min(slo_seconds, timeout)) < SLO_QUANTILE:
                violations += 1
            p95 = min(timeout, mixture_quantile(mixes, SLO_QUANTILE, near_seconds=last_p95))
            last_p95 = p95
            p95_max = max(p95_max, p95)
        timeline.at_seconds.append(now)
        timeline.load_per_second.append(rate)
        timeline.replicas.append(float(len(cluster.pods)))
        timeline.p95_seconds.append(p95)
        timeline.cpu_request_cores.append(sum(cpu_request_millicores(p.resources) for p in cluster.pods) / 1000.0)
        timeline.working_set_mib.append(max((p.working_set_bytes for p in cluster.pods), default=math.nan) / MIB)
        timeline.pool_in_use.append(pool_in_use)
        timeline.record_tuned(_tuned_values(settings))

        if profile is None or prometheus is None or (index + 1) % interval_minutes:
            continue
        at = datetime.fromtimestamp(now, tz=UTC)
        live = read_live_config(settings=settings, cluster=cluster, hpa=hpa, window_seconds=window_seconds)
        observations = prometheus.observations(at_seconds=now, window_seconds=window_seconds, live=live,
                                               peak_window_seconds=peak_window_seconds)
        decision = decide(profile, observations, state, at)
        applied = False
        change = decision.change
        if decision.apply and change is not None:
            before = settings
            # The coupled edit first, as ProposedChange asks of its writer.
            if change.coupled is not None:
                settings = _apply(settings, change.coupled)
            settings = _apply(settings, change.edit)
            applied = True
            if change.rollback:
                rollbacks += 1
            else:
                changes += 1
            kind = "rollback" if change.rollback else "change"
            timeline.events.append((now, f"{kind}: {change.edit.setting.value}"))
            decisions.append((now, f"{kind} {change.edit.setting.value}: {change.reason}"))
            if settings.hpa != before.hpa:
                spec = build_hpa_spec(settings.hpa)
            cluster.set_resources(settings.resources)
            cluster.pool = settings.pool
        state = compute_next_state(state, decision=decision, observations=observations, now=at, applied=applied)

    metrics = RunMetrics(
        slo_violation_minutes=violations,
        replica_hours=pod_seconds / 3600.0,
        cpu_core_hours=core_seconds / 3600.0,
        pool_connection_hours=pool_seconds / 3600.0,
        scale_events=scale_events,
        changes=changes,
        rollbacks=rollbacks,
        p95_max_seconds=p95_max,
    )
    return RunResult(name, metrics, timeline, decisions, prometheus)


def warm_up(
    *, trace: Trace, settings: WorkloadSettings, params: ClusterParams, slo_seconds: float, window_seconds: float = 0.0,
) -> Prometheus:
    """Replay ``trace`` (the time before the window) with the scenario's own configuration, untuned, and
    return what Prometheus holds at its end — the history a team's Prometheus has when perfpilot arrives,
    with at least ``window_seconds`` of evaluated signals (the profile's ``guardrails.window``)."""
    run = run_autoscaled(name="warm-up", trace=trace, settings=settings, params=params, slo_seconds=slo_seconds,
                         kept_window_seconds=window_seconds, read_only_at_end=True)
    assert run.prometheus is not None
    return run.prometheus


def run_oracle(*, trace: Trace, settings: WorkloadSettings, params: ClusterParams, slo_seconds: float) -> RunResult:
    timeline = Timeline()
    step_hours = trace.step_seconds / 3600.0
    cpu_cores = cpu_request_millicores(settings.resources) / 1000.0
    violations = 0
    replica_hours = core_hours = pool_hours = 0.0
    events = 0
    previous: int | None = None
    p95_max = 0.0
    for index, rate in enumerate(trace.rates_per_second):
        minute = oracle_minute(rate_per_second=rate, settings=settings, params=params, slo_seconds=slo_seconds)
        violations += 0 if minute.meets_slo else 1
        replica_hours += minute.replicas * step_hours
        core_hours += minute.replicas * cpu_cores * step_hours
        pool_hours += minute.pool_size * step_hours
        if previous is not None and minute.replicas != previous:
            events += 1
        previous = minute.replicas
        p95_max = max(p95_max, minute.p95_seconds)
        timeline.at_seconds.append(trace.start_seconds + (index + 1) * trace.step_seconds)
        timeline.load_per_second.append(rate)
        timeline.replicas.append(float(minute.replicas))
        timeline.p95_seconds.append(minute.p95_seconds)
        timeline.cpu_request_cores.append(minute.replicas * cpu_cores)
        timeline.working_set_mib.append(math.nan)
        timeline.pool_in_use.append(math.nan)
    metrics = RunMetrics(violations, replica_hours, core_hours, pool_hours, events, 0, 0, p95_max)
    return RunResult("oracle", metrics, timeline)


@dataclass
class Simulation:
    trace: Trace
    scenario: Scenario
    slo_seconds: float
    runs: dict[str, RunResult]


def simulate(
    *, trace: Trace, scenario: Scenario, profile: PerformanceProfileSpec, runs: tuple[str, ...] = RUN_NAMES,
    before: Trace | None = None,
) -> Simulation:
    """Every run of ``runs`` on the same (already scaled) trace and scenario.

    ``before`` is the part of the trace just before it (scaled the same way), at most ``peakWindow`` long:
    perfpilot's Prometheus is warmed up on it with the scenario's configuration. Without it, perfpilot's
    peaks are those of the history so far.
    """
    slo = float(profile.slo.latency_p95.seconds)
    settings = scenario.settings
    params = scenario.params
    results: dict[str, RunResult] = {}
    for name in runs:
        if name == "perfpilot":
            history = None
            if before is not None and before.rates_per_second:
                history = warm_up(trace=before, settings=settings, params=params, slo_seconds=slo,
                                  window_seconds=float(profile.guardrails.window.seconds))
            results[name] = run_autoscaled(name=name, trace=trace, settings=settings, params=params,
                                           slo_seconds=slo, profile=profile, history=history)
        elif name == "static":
            results[name] = run_autoscaled(name=name, trace=trace, settings=settings, params=params, slo_seconds=slo,
                                           scraped=False)
        elif name == "k8s-default":
            results[name] = run_autoscaled(name=name, trace=trace, settings=k8s_default_settings(settings),
                                           params=params, slo_seconds=slo, scraped=False)
        elif name == "oracle":
            results[name] = run_oracle(trace=trace, settings=settings, params=params, slo_seconds=slo)
        else:
            raise ValueError(f"unknown run {name!r} (runs: {', '.join(RUN_NAMES)})")
    return Simulation(trace, scenario, slo, results)
