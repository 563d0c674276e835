"""One snapshot per Prometheus per cycle, serving every profile that reads from it.

``plan_queries`` (pure) groups the cycle's profiles by query shape and builds one query per signal and
shape, covering all their namespaces; ``fetch_snapshot`` runs them through a ``PrometheusReader``;
``Snapshot.observations`` cuts each profile's ``Observations`` out of the shared results. With every
profile on the default metric names a cycle issues 16 queries (7 signals over the window; 4 peaks and the
CPU history over the peak window; each container's CPU, throttling and working set, and its working-set
peak), or 23 when any profile tunes a pool (its 3 signals, the pool size served at its smallest and largest,
its demand peak and history), whether it has one profile or a thousand (11 more when some profiles' pod
templates are known and others' are not: their container signals are counted apart).

Failures never become zeros: a query that fails makes its signal Unknown for the profiles it served
(``"prometheus query failed: …"``); an unreachable server makes every signal of every profile on it
Unknown (``"prometheus unreachable: …"``) and the remaining queries are not sent, so a dead server costs
one timeout per cycle, not one per query. The error itself is kept as data: ``Snapshot.unreachable``, and
``CycleObservations.unreachable`` for every server that answered no query of the cycle, and
``CycleObservations.without_result`` for every server reached that gave no query a result, so callers
(``plan``) never have to recognise either from a reason's text.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from perfpilot.api.quantities import Duration
from perfpilot.api.spec import DEFAULT_PEAK_WINDOW_SECONDS, PerformanceProfile
from perfpilot.observe.promql import (
    APP_SIGNALS,
    BY_CONTAINER,
    BY_POOL,
    BY_WORKLOAD,
    HISTORIES,
    POOL_SIGNALS,
    AppShape,
    ByContainerName,
    ContainerShape,
    PeakName,
    PeakSubquery,
    PoolShape,
    QueryBuildError,
    SignalName,
    cpu_history_query,
    cpu_throttled_by_container_query,
    cpu_throttled_query,
    cpu_usage_by_container_query,
    cpu_usage_query,
    error_ratio_query,
    freeze_matchers,
    latency_p95_query,
    list_labels_matched_when_missing,
    memory_working_set_by_container_query,
    memory_working_set_query,
    peak_cpu_usage_total_query,
    peak_memory_working_set_by_container_query,
    peak_memory_working_set_query,
    peak_pool_demand_query,
    peak_request_rate_query,
    peak_request_rate_rise_query,
    pool_history_query,
    pool_max_wait_query,
    pool_served_size_query,
    pool_sum_query,
    replicas_query,
    request_rate_query,
)
from perfpilot.observe.reader import (
    PrometheusError,
    PrometheusQueryError,
    PrometheusQueryTooHeavy,
    PrometheusReader,
    PrometheusSettings,
    PrometheusUnreachable,
    RangeSeries,
)
from perfpilot.observe.series import to_signal
from perfpilot.tuning.observations import LiveConfig, Observations, Peak, Signal, Unknown

Shape = AppShape | ContainerShape | PoolShape
ProfileKey = tuple[str, str]  # (namespace, name) of the PerformanceProfile
SeriesKey = tuple[str, ...]  # values of the query's grouping labels, in BY_WORKLOAD / BY_POOL order


def profile_key(profile: PerformanceProfile) -> ProfileKey:
    return (profile.metadata.namespace, profile.metadata.name)


QueryName = SignalName | PeakName | ByContainerName
# Read as one point at the evaluation time (the subquery looks back over the peak window); the rest over the window.
POINT_QUERIES: frozenset[QueryName] = frozenset({*PeakName, ByContainerName.PEAK_MEMORY_WORKING_SET})


@dataclass(frozen=True)
class PlannedQuery:
    signal: QueryName
    shape: Shape
    query: str | PeakSubquery  # a peak or a history is a subquery, which may be read in parts
    group_labels: tuple[str, ...]

    @property
    def promql(self) -> str:
        return self.query.promql if isinstance(self.query, PeakSubquery) else self.query


@dataclass(frozen=True)
class QueryPlan:
    """The queries of one cycle against one Prometheus, and what they need to be cut per profile."""

    queries: tuple[PlannedQuery, ...]
    window_seconds: int
    step_seconds: int
    rate_window_seconds: int
    # (profile, "app" | "pool" | "window"): its metrics or pool matchers make no query, or its window is too long
    # for one range query at the step (its window signals are Unknown; its peaks, one point each, are read).
    shape_errors: Mapping[tuple[ProfileKey, str], str] = field(default_factory=dict)
    # The widest peakWindow of the profiles (a whole number of steps): a profile with a shorter one gets a
    # peak at least as high as its own, which only makes a shrink more careful.
    peak_window_seconds: int = DEFAULT_PEAK_WINDOW_SECONDS
    # The container shape each profile's container signals were queried with (a profile not listed: the
    # unfiltered one).
    container_shapes: Mapping[ProfileKey, ContainerShape] = field(default_factory=dict)

    def container_shape_for(self, key: ProfileKey) -> ContainerShape:
        return self.container_shapes.get(key, ContainerShape())


# Prometheus refuses a range query of more steps than this, (end - start) / step ("exceeded maximum resolution
# of 11,000 points per timeseries"; 11,000 steps, 11,001 points, are answered). The window signals of all
# profiles share one range, so a profile whose window needs more at the step is left out of it: widened to its
# window, the range would fail every profile's query.
MAX_STEPS_PER_QUERY = 11_000


def _window_seconds_at_step(profile: PerformanceProfile, step_seconds: int) -> int:
    # A whole number of steps, so every profile's window ends on a point the query evaluated.
    return math.ceil(float(profile.spec.guardrails.window.seconds) / step_seconds) * step_seconds


def describe_window_too_long(profile: PerformanceProfile, step_seconds: int) -> str | None:
    """Why ``profile``'s window cannot be read in one range query at ``step_seconds``, or None."""
    steps = _window_seconds_at_step(profile, step_seconds) // step_seconds
    if steps <= MAX_STEPS_PER_QUERY:
        return None
    return (f"guardrails.window {profile.spec.guardrails.window} at a {step_seconds}s step is {steps} steps, more "
            f"than the {MAX_STEPS_PER_QUERY} a Prometheus range query answers: shorten the window or raise the "
            f"reader's step")


def _window_seconds(profiles: Iterable[PerformanceProfile], step_seconds: int) -> int:
    """The widest window the profiles' range queries can share (the step's, if none can)."""
    usable = [_window_seconds_at_step(p, step_seconds) for p in profiles
              if describe_window_too_long(p, step_seconds) is None]
    return max(usable, default=step_seconds)


def _peak_window_seconds(profiles: Iterable[PerformanceProfile], step_seconds: int) -> int:
    widest = max(float(p.spec.guardrails.peak_window.seconds) for p in profiles)
    return math.ceil(widest / step_seconds) * step_seconds


def _app_builders() -> dict[SignalName, Callable[..., str]]:
    return {
        SignalName.LATENCY_P95: latency_p95_query,
        SignalName.REQUEST_RATE: request_rate_query,
        SignalName.ERROR_RATIO: error_ratio_query,
    }


def plan_queries(profiles: Sequence[PerformanceProfile], settings: PrometheusSettings, *,
                 templates: Mapping[ProfileKey, Sequence[str]] | None = None) -> QueryPlan:
    """One query per signal and shape for all ``profiles`` (which share one Prometheus). ``templates``: the
    names of each profile's pod-template containers, which its container signals count; a profile without
    them (not known) counts every container. The profiles with templates share one query per container
    signal, counting every name of theirs; those without share another."""
    if not profiles:
        raise ValueError("a snapshot needs at least one profile")
    app_namespaces: dict[AppShape, set[str]] = defaultdict(set)
    pool_namespaces: dict[PoolShape, set[str]] = defaultdict(set)
    shape_errors: dict[tuple[ProfileKey, str], str] = {}
    for profile in profiles:
        key = profile_key(profile)
        too_long = describe_window_too_long(profile, settings.step_seconds)
        if too_long is not None:
            shape_errors[(key, "window")] = too_long
        try:
            app_namespaces[AppShape.from_metrics(profile.spec.metrics)].add(profile.metadata.namespace)
        except QueryBuildError as error:
            shape_errors[(key, "app")] = str(error)
        pgbouncer = profile.spec.pool.pgbouncer
        if profile.spec.pool.enabled and pgbouncer is not None:
            try:
                pool_namespaces[PoolShape.from_pgbouncer(pgbouncer)].add(profile.metadata.namespace)
            except QueryBuildError as error:
                shape_errors[(key, "pool")] = str(error)

    rate = settings.rate_window_seconds
    step = settings.step_seconds
    peak_window = _peak_window_seconds(profiles, step)
    queries: list[PlannedQuery] = []
    for app_shape, namespaces in sorted(app_namespaces.items(), key=lambda item: repr(item[0])):
        ns = sorted(namespaces)
        for signal, build in _app_builders().items():
            promql = build(app_shape, namespaces=ns, rate_window_seconds=rate)
            queries.append(PlannedQuery(signal, app_shape, promql, BY_WORKLOAD))
        peak_rate = peak_request_rate_query(app_shape, namespaces=ns, rate_window_seconds=rate,
                                            peak_window_seconds=peak_window, step_seconds=step)
        queries.append(PlannedQuery(PeakName.REQUEST_RATE, app_shape, peak_rate, BY_WORKLOAD))
        peak_rise = peak_request_rate_rise_query(app_shape, namespaces=ns, rate_window_seconds=rate,
                                                 peak_window_seconds=peak_window, step_seconds=step)
        queries.append(PlannedQuery(PeakName.REQUEST_RATE_RISE, app_shape, peak_rise, BY_WORKLOAD))

    matchers = freeze_matchers(settings.container_matchers)
    templates = templates or {}
    known = {name for profile in profiles for name in templates.get(profile_key(profile), ())}
    filtered = ContainerShape(matchers=matchers, containers=tuple(sorted(known)))
    unfiltered = ContainerShape(matchers=matchers)
    container_shapes = {profile_key(p): filtered if templates.get(profile_key(p)) else unfiltered for p in profiles}
    container_namespaces: dict[ContainerShape, set[str]] = defaultdict(set)
    for profile in profiles:
        container_namespaces[container_shapes[profile_key(profile)]].add(profile.metadata.namespace)
    for container_shape, namespaces in sorted(container_namespaces.items(), key=lambda item: repr(item[0])):
        queries.extend(_container_queries(container_shape, sorted(namespaces), rate_window_seconds=rate,
                                          peak_window_seconds=peak_window, step_seconds=step))

    for pool_shape, namespaces in sorted(pool_namespaces.items(), key=lambda item: repr(item[0])):
        ns = sorted(namespaces)
        pool_queries = {
            SignalName.POOL_SERVER_ACTIVE: pool_sum_query(pool_shape, pool_shape.names.server_active, namespaces=ns),
            SignalName.POOL_CLIENT_WAITING: pool_sum_query(pool_shape, pool_shape.names.client_waiting,
                                                           namespaces=ns),
            SignalName.POOL_MAX_WAIT: pool_max_wait_query(pool_shape, namespaces=ns),
            SignalName.POOL_SERVED_SIZE_MIN: pool_served_size_query(pool_shape, namespaces=ns, smallest=True),
            SignalName.POOL_SERVED_SIZE_MAX: pool_served_size_query(pool_shape, namespaces=ns, smallest=False),
        }
        queries.extend(PlannedQuery(s, pool_shape, q, BY_POOL) for s, q in pool_queries.items())
        demand = peak_pool_demand_query(pool_shape, namespaces=ns, peak_window_seconds=peak_window, step_seconds=step)
        queries.append(PlannedQuery(PeakName.POOL_DEMAND, pool_shape, demand, BY_POOL))
        history = pool_history_query(pool_shape, namespaces=ns, peak_window_seconds=peak_window, step_seconds=step)
        queries.append(PlannedQuery(PeakName.POOL_HISTORY, pool_shape, history, BY_POOL))

    return QueryPlan(
        queries=tuple(queries),
        window_seconds=_window_seconds(profiles, settings.step_seconds),
        step_seconds=settings.step_seconds,
        rate_window_seconds=rate,
        shape_errors=shape_errors,
        peak_window_seconds=peak_window,
        container_shapes=container_shapes,
    )


def _container_queries(shape: ContainerShape, namespaces: Sequence[str], *, rate_window_seconds: int,
                       peak_window_seconds: int, step_seconds: int) -> list[PlannedQuery]:
    rate = rate_window_seconds
    signals: dict[QueryName, str | PeakSubquery] = {
        SignalName.CPU_USAGE: cpu_usage_query(shape, namespaces=namespaces, rate_window_seconds=rate),
        SignalName.CPU_THROTTLED: cpu_throttled_query(shape, namespaces=namespaces, rate_window_seconds=rate),
        SignalName.MEMORY_WORKING_SET: memory_working_set_query(shape, namespaces=namespaces),
        SignalName.REPLICAS: replicas_query(shape, namespaces=namespaces),
    }
    peaks: dict[QueryName, str | PeakSubquery] = {
        PeakName.CPU_USAGE_TOTAL: peak_cpu_usage_total_query(
            shape, namespaces=namespaces, rate_window_seconds=rate, peak_window_seconds=peak_window_seconds,
            step_seconds=step_seconds,
        ),
        PeakName.CPU_HISTORY: cpu_history_query(
            shape, namespaces=namespaces, rate_window_seconds=rate, peak_window_seconds=peak_window_seconds,
            step_seconds=step_seconds,
        ),
        PeakName.MEMORY_WORKING_SET: peak_memory_working_set_query(
            shape, namespaces=namespaces, peak_window_seconds=peak_window_seconds, step_seconds=step_seconds
        ),
    }
    by_container: dict[QueryName, str | PeakSubquery] = {
        ByContainerName.CPU_USAGE: cpu_usage_by_container_query(shape, namespaces=namespaces, rate_window_seconds=rate),
        ByContainerName.CPU_THROTTLED: cpu_throttled_by_container_query(shape, namespaces=namespaces,
                                                                        rate_window_seconds=rate),
        ByContainerName.MEMORY_WORKING_SET: memory_working_set_by_container_query(shape, namespaces=namespaces),
        ByContainerName.PEAK_MEMORY_WORKING_SET: peak_memory_working_set_by_container_query(
            shape, namespaces=namespaces, peak_window_seconds=peak_window_seconds, step_seconds=step_seconds
        ),
    }
    return [
        *(PlannedQuery(name, shape, promql, BY_WORKLOAD) for name, promql in (*signals.items(), *peaks.items())),
        *(PlannedQuery(name, shape, promql, BY_CONTAINER) for name, promql in by_container.items()),
    ]


# A query's outcome: its series by grouping-label values, or why there is none.
QueryOutcome = Mapping[SeriesKey, tuple[RangeSeries, ...]] | Unknown


def unreachable_reason(error: PrometheusUnreachable) -> str:
    """The reason every signal carries when its server could not be reached."""
    return f"prometheus unreachable: {error}"


@dataclass(frozen=True)
class Snapshot:
    """Every query's outcome for one Prometheus at one evaluation time."""

    at: datetime
    plan: QueryPlan
    settings: PrometheusSettings
    outcomes: Mapping[tuple[QueryName, Shape], QueryOutcome]
    # The error that stopped the queries to this server (the rest were not sent), or None.
    unreachable: PrometheusUnreachable | None = None
    queries_answered: int = 0  # queries the server answered, with series or with a refusal
    # Why each query sent failed (refused, an odd answer, the server gone), in the order they were sent.
    failures: tuple[PrometheusError, ...] = ()

    @property
    def has_result(self) -> bool:
        """Whether any query got a result (series, or none matching): a server that answered every query
        with a refusal or something that is not a result gives nothing to plan from."""
        return any(not isinstance(outcome, Unknown) for outcome in self.outcomes.values())

    def observations(self, profile: PerformanceProfile, live: LiveConfig) -> Observations:
        """The profile's signals over its own window, and its peaks, cut from the shared results."""
        return Observations.of_signals(
            at=self.at,
            window_seconds=float(profile.spec.guardrails.window.seconds),
            step_seconds=float(self.plan.step_seconds),
            rate_window_seconds=float(self.plan.rate_window_seconds),
            live=live,
            signals={signal.value: self._signal(profile, live, signal) for signal in SignalName},
            peak_window_seconds=float(self.plan.peak_window_seconds),
            peaks={peak.value: self._peak(profile, peak) for peak in PeakName},
            signals_by_container={name.value: self._signal_by_container(profile, live, name)
                                  for name in ByContainerName if name not in POINT_QUERIES},
            peaks_by_container={ByContainerName.PEAK_MEMORY_WORKING_SET.value: self._peak_working_set_by_container(
                profile, live)},
        )

    def _matching(
        self, profile: PerformanceProfile, signal: QueryName, *, pool_workloads: tuple[str, ...] = ()
    ) -> tuple[list[RangeSeries], str] | Unknown:
        """The series of ``signal``'s query that belong to ``profile``, and where they were looked for; a pool's
        only from ``pool_workloads`` when they are given."""
        key = profile_key(profile)
        namespace = profile.metadata.namespace
        workload = profile.spec.target_ref.name
        if signal not in POINT_QUERIES and (key, "window") in self.plan.shape_errors:
            return Unknown(self.plan.shape_errors[(key, "window")])
        shape: Shape
        is_pool = signal in POOL_SIGNALS or signal in (PeakName.POOL_DEMAND, PeakName.POOL_HISTORY)
        if is_pool:
            pgbouncer = profile.spec.pool.pgbouncer
            if not profile.spec.pool.enabled or pgbouncer is None:
                return Unknown("pool tuning is off")
            if (key, "pool") in self.plan.shape_errors:
                return Unknown(f"invalid pool matchers: {self.plan.shape_errors[(key, 'pool')]}")
            shape = PoolShape.from_pgbouncer(pgbouncer)
        elif signal in APP_SIGNALS or signal in (PeakName.REQUEST_RATE, PeakName.REQUEST_RATE_RISE):
            if (key, "app") in self.plan.shape_errors:
                return Unknown(f"invalid spec.metrics: {self.plan.shape_errors[(key, 'app')]}")
            shape = AppShape.from_metrics(profile.spec.metrics)
        else:
            shape = self.plan.container_shape_for(key)
        outcome = self.outcomes.get((signal, shape))
        if outcome is None:
            return Unknown("not queried")
        if isinstance(outcome, Unknown):
            return outcome

        if is_pool:
            assert pgbouncer is not None
            pooler = pgbouncer.pooler_ref.name if pgbouncer.pooler_ref is not None else None
            # A CloudNativePG Pooler is a Deployment named after it; a ConfigMap-configured pgBouncer can be any
            # workload in the namespace, so every one serving the database counts (narrow it with matchers).
            matching = [
                series
                for (ns, pool_workload, database), found in outcome.items()
                if ns == namespace and database == pgbouncer.database and pooler in (None, pool_workload)
                and (not pool_workloads or pool_workload in pool_workloads)
                for series in found
            ]
            workloads = pooler or ("|".join(pool_workloads) if pool_workloads else "*")
            where = f"pool {namespace}/{workloads} database {pgbouncer.database}"
        else:
            matching = list(outcome.get((namespace, workload), ()))
            where = f"{namespace}/{workload}"
        return matching, where

    def _signal(self, profile: PerformanceProfile, live: LiveConfig, signal: SignalName) -> Signal:
        # The pool size served is read from the pgBouncers of the profile's ConfigMap alone: another of the
        # namespace serving the database at its own size would read as this pool not served.
        served_from = live.pool.pooler_workloads if live.pool is not None and signal in SERVED_SIGNALS else ()
        found = self._matching(profile, signal, pool_workloads=served_from)
        if isinstance(found, Unknown):
            return found
        matching, where = found
        if not matching:
            if signal is SignalName.CPU_THROTTLED and any(c.cpu_limit_millicores is None for c in live.containers):
                return Unknown(f"no CFS throttling series for {where}: a container has no CPU limit")
            labels = ", ".join(list_labels_matched_when_missing(profile.spec.metrics.error_matcher))
            if signal is SignalName.ERROR_RATIO and labels and self._has_series(profile, SignalName.REQUEST_RATE):
                return Unknown(f"no request series of {where} carries the label(s) spec.metrics.errorMatcher "
                               f"also matches when missing ({labels}): every request would read as failed")
            return Unknown(f"no series for {where}")
        reduce = _REDUCE_POOLERS.get(signal, math.fsum)
        return to_signal(
            _combine(matching, reduce),
            at_seconds=self.at.timestamp(),
            window_seconds=float(profile.spec.guardrails.window.seconds),
            step_seconds=float(self.plan.step_seconds),
        )


    def _has_series(self, profile: PerformanceProfile, signal: SignalName) -> bool:
        found = self._matching(profile, signal)
        return not isinstance(found, Unknown) and bool(found[0])

    def _peak(self, profile: PerformanceProfile, peak: PeakName) -> Peak:
        """The peak's value at the evaluation time; several pool series (poolers) add up, except their
        histories: the pool has the history of its longest-watched pooler."""
        found = self._matching(profile, peak)
        if isinstance(found, Unknown):
            return found
        matching, where = found
        values = _read_peak_values(matching, where=where)
        if isinstance(values, Unknown):
            return values
        return max(values) if peak in HISTORIES else math.fsum(values)


    def _series_by_container(self, profile: PerformanceProfile, live: LiveConfig,
                             name: ByContainerName) -> tuple[dict[str, list[RangeSeries]], str] | Unknown:
        """The series of each container of ``live``'s template (several for one container, a restart under
        another id, are all kept), and where they were looked for."""
        namespace, workload = profile.metadata.namespace, profile.spec.target_ref.name
        if name not in POINT_QUERIES and (profile_key(profile), "window") in self.plan.shape_errors:
            return Unknown(self.plan.shape_errors[(profile_key(profile), "window")])
        outcome = self.outcomes.get((name, self.plan.container_shape_for(profile_key(profile))))
        if outcome is None:
            return Unknown("not queried")
        if isinstance(outcome, Unknown):
            return outcome
        return ({container.name: list(outcome.get((namespace, workload, container.name), ()))
                 for container in live.containers}, f"{namespace}/{workload}")

    def _signal_by_container(self, profile: PerformanceProfile, live: LiveConfig,
                             name: ByContainerName) -> dict[str, Signal]:
        found = self._series_by_container(profile, live, name)
        if isinstance(found, Unknown):
            return {container.name: found for container in live.containers}
        by_container, where = found
        readings: dict[str, Signal] = {}
        for container in live.containers:
            series = by_container[container.name]
            if series:
                readings[container.name] = to_signal(
                    _combine(series, max), at_seconds=self.at.timestamp(),
                    window_seconds=float(profile.spec.guardrails.window.seconds),
                    step_seconds=float(self.plan.step_seconds))
            elif name is ByContainerName.CPU_THROTTLED and container.cpu_limit_millicores is None:
                readings[container.name] = Unknown(
                    f"no CFS throttling series for {where} container {container.name}: it has no CPU limit")
            else:
                readings[container.name] = Unknown(f"no series for {where} container {container.name}")
        return readings

    def _peak_working_set_by_container(self, profile: PerformanceProfile, live: LiveConfig) -> dict[str, Peak]:
        found = self._series_by_container(profile, live, ByContainerName.PEAK_MEMORY_WORKING_SET)
        if isinstance(found, Unknown):
            return {container.name: found for container in live.containers}
        by_container, where = found
        peaks: dict[str, Peak] = {}
        for name, series in by_container.items():
            values = _read_peak_values(series, where=f"{where} container {name}")
            peaks[name] = values if isinstance(values, Unknown) else max(values)
        return peaks


SERVED_SIGNALS = frozenset({SignalName.POOL_SERVED_SIZE_MIN, SignalName.POOL_SERVED_SIZE_MAX})
# How the series of several pooler workloads serving one profile's database combine (the rest add up): the
# oldest wait is the worst one, the pool size served the smallest or largest of any pod.
_REDUCE_POOLERS: dict[SignalName, Callable[[Iterable[float]], float]] = {
    SignalName.POOL_MAX_WAIT: max,
    SignalName.POOL_SERVED_SIZE_MIN: min,
    SignalName.POOL_SERVED_SIZE_MAX: max,
}


def _read_peak_values(series: Sequence[RangeSeries], *, where: str) -> list[float] | Unknown:
    """Each series' one point at the evaluation time, or why there is no peak to read."""
    if not series:
        return Unknown(f"no series for {where}")
    values = [float(one.samples[-1][1]) for one in series if one.samples]
    if not values or any(not math.isfinite(value) for value in values):
        return Unknown(f"no finite peak for {where}")
    return values


def _combine(series: Sequence[RangeSeries], reduce: Callable[[Iterable[float]], float]) -> list[tuple[float, float]]:
    """Samples of several series merged per timestamp (only pools have several series per profile)."""
    if len(series) == 1:
        return [(stamp, float(value)) for stamp, value in series[0].samples]
    by_time: dict[float, list[float]] = defaultdict(list)
    for one in series:
        for stamp, value in one.samples:
            by_time[stamp].append(float(value))
    return [(stamp, reduce(values)) for stamp, values in sorted(by_time.items())]


# Halvings of a peak's span that the server refused as too heavy: at most 32 parts (a week in parts of
# about 5 hours, each holding 1/32 of the points the whole span would).
MAX_PEAK_HALVINGS = 5


class _QueryReads:
    """The reads of one planned query, and how many the server answered (a refusal is an answer). A peak or
    history the server refuses as too heavy is read in parts, each part it refuses halved again, and the
    parts combined: their peaks by the largest (NaN only where every part is, as ``max_over_time`` over the
    whole span), their histories by their sum."""

    def __init__(self, reader: PrometheusReader, *, at: datetime, step_seconds: int) -> None:
        self.reader, self.at, self.step_seconds = reader, at, step_seconds
        self.answered = 0

    def fetch(self, query: PlannedQuery, *, window_seconds: int) -> list[RangeSeries]:
        """The query's series over ``window_seconds``; a peak or history, one point at the evaluation time."""
        if not isinstance(query.query, PeakSubquery):
            return self._fetch_once(query.query, signal=query.signal, window_seconds=window_seconds)
        try:
            return self._fetch_once(query.promql, signal=query.signal, window_seconds=0)
        except PrometheusQueryTooHeavy:
            return self._fetch_in_parts(query.query, signal=query.signal, halvings_left=MAX_PEAK_HALVINGS)

    def _fetch_once(self, promql: str, *, signal: QueryName, window_seconds: int) -> list[RangeSeries]:
        try:
            found = self.reader.query_range(promql, signal=signal.value, end=self.at, window_seconds=window_seconds,
                                            step_seconds=self.step_seconds)
        except PrometheusQueryError:
            self.answered += 1
            raise
        self.answered += 1
        return found

    def _fetch_in_parts(self, subquery: PeakSubquery, *, signal: QueryName, halvings_left: int
                        ) -> list[RangeSeries]:
        at_milliseconds = round(self.at.timestamp() * 1000)
        parts = subquery.split(at_milliseconds=at_milliseconds) if halvings_left > 0 else None
        if parts is None:
            raise PrometheusQueryTooHeavy(url=self.reader.url, cause=(
                f"too many samples even for {_span(subquery.range_milliseconds)} of the peak window, after "
                f"{MAX_PEAK_HALVINGS - halvings_left} halvings: raise the server's samples limit (Prometheus' "
                f"--query.max-samples, VictoriaMetrics' -search.maxSamplesPerQuery), or shorten "
                f"guardrails.peakWindow"))
        combined: dict[tuple[tuple[str, str], ...], list[float]] = defaultdict(list)
        for part in parts:
            try:
                found = self._fetch_once(part.promql, signal=signal, window_seconds=0)
            except PrometheusQueryTooHeavy:
                found = self._fetch_in_parts(part, signal=signal, halvings_left=halvings_left - 1)
            for series in found:
                if series.samples:
                    combined[tuple(sorted(series.labels.items()))].append(float(series.samples[-1][1]))
        stamp = self.at.timestamp()
        return [RangeSeries(labels=dict(labels), samples=((stamp, repr(_combine_parts(values, subquery))),))
                for labels, values in combined.items()]


def _combine_parts(values: list[float], subquery: PeakSubquery) -> float:
    if subquery.history:
        return math.fsum(values)
    numbers = [value for value in values if not math.isnan(value)]
    return max(numbers) if numbers else math.nan


def _span(milliseconds: int) -> str:
    return str(Duration(math.ceil(milliseconds / 1000)))


def fetch_snapshot(
    reader: PrometheusReader, profiles: Sequence[PerformanceProfile], *, at: datetime,
    templates: Mapping[ProfileKey, Sequence[str]] | None = None,
) -> Snapshot:
    """Run one cycle's queries for ``profiles`` (all on ``reader``'s Prometheus) at evaluation time ``at``,
    each profile's container signals counting its ``templates`` containers (see ``plan_queries``).

    ``at`` is cut to whole seconds: the HTTP API is given whole seconds, and the cut keeps the query's last
    point and the profiles' windows ending on the same instant.
    """
    at = at.replace(microsecond=0)
    plan = plan_queries(profiles, reader.settings, templates=templates)
    outcomes: dict[tuple[QueryName, Shape], QueryOutcome] = {}
    unreachable: PrometheusUnreachable | None = None
    answered = 0
    failures: list[PrometheusError] = []
    for query in plan.queries:
        if unreachable is not None:
            outcomes[(query.signal, query.shape)] = Unknown(unreachable_reason(unreachable))
            continue
        reads = _QueryReads(reader, at=at, step_seconds=plan.step_seconds)
        try:
            # A peak is one point at the evaluation time: its subquery looks back over the peak window.
            result = reads.fetch(query, window_seconds=plan.window_seconds)
        except PrometheusUnreachable as error:
            answered += reads.answered
            unreachable = error
            failures.append(error)
            outcomes[(query.signal, query.shape)] = Unknown(unreachable_reason(error))
            continue
        except PrometheusError as error:
            answered += reads.answered
            failures.append(error)
            outcomes[(query.signal, query.shape)] = Unknown(f"prometheus query failed: {error}")
            continue
        answered += reads.answered
        grouped: dict[SeriesKey, list[RangeSeries]] = defaultdict(list)
        for series in result:
            grouped[tuple(series.labels.get(label, "") for label in query.group_labels)].append(series)
        outcomes[(query.signal, query.shape)] = {key: tuple(found) for key, found in grouped.items()}
    return Snapshot(at=at, plan=plan, settings=reader.settings, outcomes=outcomes, unreachable=unreachable,
                    queries_answered=answered, failures=tuple(failures))


@dataclass(frozen=True)
class ProfileTarget:
    """One profile to observe in a cycle, with its live configuration from the Kubernetes API."""

    profile: PerformanceProfile
    live: LiveConfig


def _all_unknown(target: ProfileTarget, *, at: datetime, settings: PrometheusSettings, reason: str) -> Observations:
    unknown = Unknown(reason)
    return Observations.of_signals(
        at=at,
        window_seconds=float(target.profile.spec.guardrails.window.seconds),
        step_seconds=float(settings.step_seconds),
        rate_window_seconds=float(settings.rate_window_seconds),
        live=target.live,
        signals={signal.value: unknown for signal in SignalName},
        peak_window_seconds=float(target.profile.spec.guardrails.peak_window.seconds),
        peaks={peak.value: unknown for peak in PeakName},
        signals_by_container={name.value: {c.name: unknown for c in target.live.containers}
                              for name in ByContainerName if name not in POINT_QUERIES},
        peaks_by_container={ByContainerName.PEAK_MEMORY_WORKING_SET.value: {
            c.name: unknown for c in target.live.containers}},
    )


@dataclass(frozen=True)
class CycleObservations(Mapping[ProfileKey, Observations]):
    """Every profile's ``Observations`` (read it as a mapping), and the servers that answered nothing.

    ``unreachable`` maps a Prometheus URL (as the profiles name it, else the default) to the error of a
    server that answered no query of the cycle: every signal of every profile on it is Unknown. A server
    that answered some queries before it went away is not listed; its lost signals say why one by one.
    ``without_result`` maps the URL of a server that was reached but gave no query a result (every query
    refused, or answered with something that is not a result: a wrong path, a look-alike) to why each
    query failed; nothing there is to be planned from either.
    """

    observations: Mapping[ProfileKey, Observations]
    unreachable: Mapping[str, PrometheusUnreachable] = field(default_factory=dict)
    without_result: Mapping[str, tuple[PrometheusError, ...]] = field(default_factory=dict)

    def __getitem__(self, key: ProfileKey) -> Observations:
        return self.observations[key]

    def __iter__(self) -> Iterator[ProfileKey]:
        return iter(self.observations)

    def __len__(self) -> int:
        return len(self.observations)


def template_containers(targets: Sequence[ProfileTarget]) -> dict[ProfileKey, tuple[str, ...]]:
    """Each target's pod-template container names, which its container signals count, so a sidecar injected
    at admission (in no template) is left out; empty when its template is not known (every container then
    counts for it). One regex of all the names keeps one query per signal: a name one template lists counts
    for every workload with a container of that name."""
    return {profile_key(t.profile): tuple(c.name for c in t.live.containers) for t in targets}


def fetch_observations(
    targets: Sequence[ProfileTarget],
    *,
    at: datetime,
    settings: PrometheusSettings,
    reader_factory: Callable[[PrometheusSettings], PrometheusReader] = PrometheusReader,
) -> CycleObservations:
    """Observations for every profile: one snapshot per Prometheus URL (the profile's, else the default)."""
    by_url: dict[str, list[ProfileTarget]] = defaultdict(list)
    for target in targets:
        by_url[target.profile.spec.metrics.prometheus_url or settings.url].append(target)
    observed: dict[ProfileKey, Observations] = {}
    unreachable: dict[str, PrometheusUnreachable] = {}
    without_result: dict[str, tuple[PrometheusError, ...]] = {}
    for url, group in by_url.items():
        if not url:
            for target in group:
                observed[profile_key(target.profile)] = _all_unknown(
                    target, at=at, settings=settings, reason="no Prometheus URL configured"
                )
            continue
        with reader_factory(settings.for_url(url)) as reader:
            snapshot = fetch_snapshot(reader, [t.profile for t in group], at=at, templates=template_containers(group))
        if snapshot.unreachable is not None and snapshot.queries_answered == 0:
            unreachable[url] = snapshot.unreachable
        elif not snapshot.has_result:
            without_result[url] = snapshot.failures
        for target in group:
            observed[profile_key(target.profile)] = snapshot.observations(target.profile, target.live)
    return CycleObservations(observations=observed, unreachable=unreachable, without_result=without_result)
