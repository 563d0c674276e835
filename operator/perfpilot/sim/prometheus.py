"""What Prometheus would hold about the model cluster, and the reader's queries over it.

Every tick the model is "scraped": per pod the cAdvisor counters (CPU seconds, CFS periods and throttled
periods), the working-set gauge, and the app's latency histogram and request and error counters, whose
series begin at their first increment as a client library's labelled series do; the pgBouncer exporter's
gauges. At every step (60 s, the reader's default) the
reader's PromQL is evaluated over those samples, as ``perfpilot.observe.promql`` writes it:

- ``histogram_quantile(0.95, sum by (le) (rate(bucket[2m])))`` over the pods — with
  ``observe.series.histogram_quantile``;
- ``sum(rate(requests[2m]))`` over the pods and codes, failed over all;
- ``1000 * avg by (workload) (rate(cpu_seconds[2m]))`` per pod, ``max`` of throttled/periods per pod,
  ``max`` of the working set, ``count`` of pods with CPU series;
- the pool gauges' latest samples.

``rate()`` is Prometheus 2.42's (``extrapolated_rate``, after ``extrapolatedRate`` in promql/functions.go):
the range ``[t - 2m, t]`` is closed at both ends, as in 2.x (3.x leaves the start out), so a scrape on the
range's start counts; counter resets are added back; the increase is extrapolated toward each edge of the
range by the distance to it when that is under 1.1 average scrape intervals, else by half an interval (a
series that starts or ends inside the range); a counter is never extrapolated below zero. The series of
a deleted pod are stale at once for instant selectors (the working set, the pod count), while its
samples still in the range keep feeding ``rate()``, as in Prometheus. ``observe.series`` has no rate
helper, so this one lives here. Each step's values are kept, and ``observations()`` cuts the profile's
window and turns each signal into
a ``Series`` or ``Unknown`` with ``observe.series.to_signal`` — exactly the reader's last step.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from perfpilot.api.spec import DEFAULT_PEAK_WINDOW_SECONDS, PoolExporter
from perfpilot.observe.presets import CADVISOR, POOL_PRESETS
from perfpilot.observe.reader import DEFAULT_RATE_WINDOW_SECONDS, DEFAULT_STEP_SECONDS
from perfpilot.observe.series import histogram_quantile, to_signal
from perfpilot.sim.cluster import CONTAINER, Cluster, TickOutcome
from perfpilot.tuning.observations import RISE_SPAN_SECONDS, LiveConfig, Observations, Peak, Signal, Unknown

# prometheus_client's default histogram buckets, which most Python services export unchanged.
LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
RATE_WINDOW_SECONDS = float(DEFAULT_RATE_WINDOW_SECONDS)
STEP_SECONDS = float(DEFAULT_STEP_SECONDS)
SIGNALS = (
    "latency_p95_seconds",
    "request_rate_per_second",
    "error_ratio",
    "cpu_usage_millicores_per_pod",
    "cpu_throttled_ratio",
    "memory_working_set_bytes_per_pod",
    "replicas",
    "pool_server_active",
    "pool_client_waiting",
    "pool_max_wait_seconds",
    "pool_served_size_min",  # the model's one pgBouncer serves its pool size at once: both are that size
    "pool_served_size_max",
)


# The peaks over guardrails.peakWindow: the Observations field and the per-step value it is the maximum of.
PEAK_SIGNALS = (
    "peak_cpu_usage_millicores_total",  # sum over pods of rate(cpu_seconds), millicores
    "peak_memory_working_set_bytes_per_pod",  # the largest pod's working set
    "peak_request_rate_per_second",
    "peak_request_rate_rise_per_second",  # request rate minus the request rate RISE_SPAN_SECONDS before
    "peak_pool_demand_connections",  # server active + clients waiting
)
# How much of the peak window has a reading: the Observations field, counted at the steps of its signal.
HISTORY_SIGNALS = ("cpu_history_seconds", "pool_history_seconds")


# What the model's application and pooler export (spec.metrics' defaults; the prometheus-community exporter).
LATENCY_BUCKET_METRIC = "http_request_duration_seconds_bucket"
REQUESTS_METRIC = "http_requests_total"
OK_CODE = "200"
FAILED_CODE = "503"  # failed requests are timeouts at the gateway
POOL_NAMES = POOL_PRESETS[PoolExporter.PROMETHEUS_COMMUNITY]
# Prometheus extrapolates toward a range's edge only when the gap is under this many average intervals.
EXTRAPOLATION_THRESHOLD_INTERVALS = 1.1


def extrapolated_rate(samples: Sequence[tuple[float, float]], *, at_seconds: float,
                      range_seconds: float) -> float | None:
    """``rate(counter[range])`` at ``at_seconds`` as Prometheus 2.42 computes it; None below two samples.

    ``samples`` are ``(timestamp_seconds, value)`` in time order; those in ``[at - range, at]`` are the
    range (2.x's selection includes its start). The steps of promql/functions.go ``extrapolatedRate``:
    the increase from the first to the last sample, plus the value before each drop (a counter reset);
    the distance from the first sample back to the point where the counter would have been zero caps the
    extrapolation toward the range's start (when the increase is positive and the first value not
    negative); toward each edge the increase is extrapolated by the distance to it when that distance is
    under 1.1 average sample intervals, else by half an average interval (the series starts or ends inside
    the range); the result is divided by the range.
    """
    range_start = at_seconds - range_seconds
    inside = [sample for sample in samples if range_start <= sample[0] <= at_seconds]
    if len(inside) < 2:
        return None
    return _extrapolate([value for _, value in inside], first_seconds=inside[0][0], last_seconds=inside[-1][0],
                        at_seconds=at_seconds, range_seconds=range_seconds)


def extrapolated_rates(samples: Sequence[tuple[float, Sequence[float]]], *, at_seconds: float,
                       range_seconds: float) -> list[float] | None:
    """``extrapolated_rate`` of each of several counters scraped together (a histogram's buckets: one tuple of
    values per timestamp), the range selected once; None below two samples."""
    range_start = at_seconds - range_seconds
    inside = [sample for sample in samples if range_start <= sample[0] <= at_seconds]
    if len(inside) < 2:
        return None
    first_seconds, last_seconds = inside[0][0], inside[-1][0]
    return [_extrapolate(column, first_seconds=first_seconds, last_seconds=last_seconds, at_seconds=at_seconds,
                         range_seconds=range_seconds)
            for column in zip(*(values for _, values in inside), strict=True)]


def _extrapolate(values: Sequence[float], *, first_seconds: float, last_seconds: float, at_seconds: float,
                 range_seconds: float) -> float:
    """The rate of one counter's ``values`` (two or more) in the range, sampled from ``first_seconds`` to
    ``last_seconds`` (``extrapolated_rate``'s steps after the selection)."""
    range_start = at_seconds - range_seconds
    first_value, last_value = values[0], values[-1]
    increase = last_value - first_value
    previous = first_value
    for value in values[1:]:
        if value < previous:  # a counter reset: the counter restarted from zero after ``previous``
            increase += previous
        previous = value
    to_start_seconds = first_seconds - range_start
    to_end_seconds = at_seconds - last_seconds
    sampled_seconds = last_seconds - first_seconds
    average_interval_seconds = sampled_seconds / (len(values) - 1)
    if increase > 0 and first_value >= 0:
        to_zero_seconds = sampled_seconds * (first_value / increase)
        to_start_seconds = min(to_start_seconds, to_zero_seconds)
    threshold_seconds = average_interval_seconds * EXTRAPOLATION_THRESHOLD_INTERVALS
    extrapolated_seconds = sampled_seconds
    extrapolated_seconds += to_start_seconds if to_start_seconds < threshold_seconds else average_interval_seconds / 2
    extrapolated_seconds += to_end_seconds if to_end_seconds < threshold_seconds else average_interval_seconds / 2
    return increase * (extrapolated_seconds / sampled_seconds / range_seconds)


class ScrapedSample(NamedTuple):
    """One sample of a scrape, as it would be stored: metric name, labels, timestamp, value."""

    metric: str
    labels: Mapping[str, str]
    timestamp_seconds: float
    value: float


def _trim(samples: deque[tuple[float, float]] | deque[tuple[float, tuple[float, ...]]], *,
          oldest_seconds: float) -> None:
    while samples and samples[0][0] < oldest_seconds:
        samples.popleft()


@dataclass
class _PodSeries:
    # The counters' samples that a rate window ending at the last step or later can still select, and those
    # scraped since (old ones go at each step, in ``evaluate``).
    cpu: deque[tuple[float, float]] = field(default_factory=deque)
    throttled: deque[tuple[float, float]] = field(default_factory=deque)
    periods: deque[tuple[float, float]] = field(default_factory=deque)
    working_set: float = 0.0
    # The app's counters since its container started: the latency buckets, +Inf (every request), the
    # requests that succeeded, the failed ones. A client library creates a labelled series at its first
    # increment, so the histogram exists from the first request observed, the ok series from the first
    # success, the failed series from the first failure; a container restart starts them from zero again
    # (a counter reset).
    app_counts: list[float] = field(default_factory=lambda: [0.0] * (len(LATENCY_BUCKETS_SECONDS) + 3))
    buckets: deque[tuple[float, tuple[float, ...]]] = field(default_factory=deque)  # the buckets and +Inf
    ok: deque[tuple[float, float]] = field(default_factory=deque)
    failed: deque[tuple[float, float]] = field(default_factory=deque)
    restarts: int = 0

    def trim(self, *, oldest_seconds: float) -> None:
        for samples in (self.cpu, self.throttled, self.periods, self.ok, self.failed):
            _trim(samples, oldest_seconds=oldest_seconds)
        _trim(self.buckets, oldest_seconds=oldest_seconds)

    def is_empty(self) -> bool:
        return not (self.cpu or self.buckets or self.ok or self.failed)


def history_points_for(window_seconds: float) -> int:
    """Steps of each signal to keep for a profile's ``guardrails.window``: the window, its rate window and a
    step either side. A real Prometheus keeps days; fewer points would leave a long window never covered."""
    return max(64, math.ceil((window_seconds + RATE_WINDOW_SECONDS) / STEP_SECONDS) + 2)


@dataclass
class Prometheus:
    """Raw samples of one workload and its pool, and the evaluated signal at every step."""

    pool_enabled: bool = True
    history_points: int = 64  # enough for a 60 m window at a 60 s step (history_points_for)
    _pods: dict[str, _PodSeries] = field(default_factory=dict)  # live pods, by the model's pod name
    # Deleted pods whose last samples a rate window can still select (checked at each step): stale for
    # instant selectors only.
    _deleted_pods: dict[str, _PodSeries] = field(default_factory=dict)
    _pool: tuple[float, float, float] = (0.0, 0.0, 0.0)
    _pool_size_served = 0.0
    _has_limit: bool = True
    _scraped_at_seconds: float | None = None
    # The largest working set of any pod, and the largest pool connections in use and clients waiting, scraped
    # since the last step: the reader's gauge peaks take each series at its largest sample of the step
    # (``max_over_time(g[step])``), not at the step's last scrape.
    _step_largest_working_set: float | None = None
    _step_largest_pool: tuple[float, float] | None = None
    signals: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    # The step values of the peak signals that can still be the maximum of a later window (a sliding-window
    # maximum: each entry is larger than every later one), for the ``max_over_time(...[peakWindow:step])``
    # subqueries of the reader. A warm-up replay before the window fills it. Peak windows are asked for with
    # start times that never go back, which is what lets old entries go.
    peak_history: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    # The steps with a reading of each history's signal (CPU total, pool demand), for the reader's
    # ``count_over_time(...[peakWindow:step])``.
    history_steps: dict[str, deque[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signals = {name: deque(maxlen=self.history_points) for name in SIGNALS}
        self.peak_history = {name: deque() for name in PEAK_SIGNALS}
        self.history_steps = {name: deque() for name in HISTORY_SIGNALS}

    def continue_from(self, earlier: Prometheus) -> None:
        """Keep what ``earlier`` (a warm-up replay before the window) evaluated: its peak history and the signals'
        last steps, which a Prometheus that was already running holds, so the first window is covered."""
        for name, evaluated in earlier.signals.items():
            kept = self.signals[name]
            last_held = kept[-1][0] if kept else -math.inf
            kept.extend(sample for sample in evaluated if sample[0] > last_held)
        for name, samples in earlier.peak_history.items():
            for stamp, value in samples:
                self._record_peak(name, stamp, value)
        # Only steps after the ones held, so a history handed over twice, or overlapping, is counted once.
        for name, steps in self.history_steps.items():
            last = steps[-1] if steps else -math.inf
            steps.extend(stamp for stamp in earlier.history_steps[name] if stamp > last)

    def _record_peak(self, name: str, stamp: float, value: float) -> None:
        kept = self.peak_history[name]
        while kept and kept[-1][1] <= value:
            kept.pop()
        kept.append((stamp, value))

    def scrape(self, *, cluster: Cluster, tick: TickOutcome, now: float) -> None:
        """Record the samples at ``now``, the end of ``tick``. Samples no rate window can select any more go
        at the next step (``evaluate``), not at every scrape: ranges select by time, so only memory waits."""
        live = set()
        for pod in cluster.pods:
            live.add(pod.name)
            series = self._pods.get(pod.name)
            if series is None:
                series = self._pods[pod.name] = _PodSeries()
            series.cpu.append((now, pod.cpu_seconds_total))
            series.throttled.append((now, pod.throttled_periods_total))
            series.periods.append((now, pod.periods_total))
            series.working_set = pod.working_set_bytes
        for gone in [name for name in self._pods if name not in live]:
            # A deleted pod's series go stale at once (staleness markers), but the samples before the
            # marker stay in range vectors: rate() keeps seeing the pod for up to a rate window.
            self._deleted_pods[gone] = self._pods.pop(gone)
        self._has_limit = all(p.resources.cpu_limit_millicores for p in cluster.pods)
        self._count_requests(cluster=cluster, tick=tick, now=now)
        self._pool = (tick.pool_server_active, tick.pool_client_waiting, tick.pool_max_wait_seconds)
        self._pool_size_served = float(cluster.pool.default_pool_size)
        self._scraped_at_seconds = now
        if cluster.pods:
            largest = max(pod.working_set_bytes for pod in cluster.pods)
            held = self._step_largest_working_set
            self._step_largest_working_set = largest if held is None else max(held, largest)
        if self.pool_enabled:
            active, waiting = tick.pool_server_active, tick.pool_client_waiting
            held_pool = self._step_largest_pool
            self._step_largest_pool = (active, waiting) if held_pool is None else (
                max(held_pool[0], active), max(held_pool[1], waiting))

    def _drop_unselectable(self, *, oldest_seconds: float) -> None:
        """Let go of the samples before ``oldest_seconds`` (no later rate window selects them), and of a
        deleted pod once it has none left."""
        for series in self._pods.values():
            series.trim(oldest_seconds=oldest_seconds)
        for name, series in list(self._deleted_pods.items()):
            series.trim(oldest_seconds=oldest_seconds)
            if series.is_empty():
                del self._deleted_pods[name]

    def _count_requests(self, *, cluster: Cluster, tick: TickOutcome, now: float) -> None:
        """The tick's requests into the counters of the pods that served them: an equal share for each pod
        ready at the tick's start (the load is spread evenly), every pod's when none was (the requests that
        timed out are still booked, at the timeout). Each pod gets the tick's latency mixture, so the sum
        over pods is the workload's histogram; what a real reader loses is what this one loses: a series'
        first scrape, and a deleted pod's requests after its last."""
        serving = [pod for pod in cluster.pods if pod.ready(tick.start_seconds)] or cluster.pods
        # A tick can fail more than arrived (requests backed up from earlier ticks time out): the served
        # ones never go below zero, so no counter ever decreases.
        ok = max(0.0, tick.requests - tick.failed)
        increments = [ok * tick.latency.cdf(bound) for bound in LATENCY_BUCKETS_SECONDS]
        increments += [ok + tick.failed, ok, tick.failed]  # +Inf: a failed request is observed at the timeout
        share = 1.0 / len(serving) if serving else 0.0
        serving_names = {pod.name for pod in serving}
        for pod in cluster.pods:
            series = self._pods[pod.name]
            if pod.restarts != series.restarts:  # the container restarted: its counters start again
                series.restarts = pod.restarts
                series.app_counts = [0.0] * len(series.app_counts)
            counts = series.app_counts
            if pod.name in serving_names:
                for index, increment in enumerate(increments):
                    counts[index] += increment * share
            if counts[-3] > 0:
                series.buckets.append((now, tuple(counts[:-2])))
            if counts[-2] > 0:
                series.ok.append((now, counts[-2]))
            if counts[-1] > 0:
                series.failed.append((now, counts[-1]))

    def latest_samples(self) -> Iterator[ScrapedSample]:
        """The samples of the latest scrape (read-only): per live pod the cAdvisor series (``pod`` is the
        model's pod name, ``container`` is ``CONTAINER``), the latency histogram's buckets (``le``, with
        ``+Inf``), ``http_requests_total`` by ``code`` (``OK_CODE`` and ``FAILED_CODE``, the latter from 0
        on) and, with the pool enabled, the pgBouncer gauges under the prometheus-community exporter's names
        (the oldest wait in seconds) and the pool size it serves. Nothing before the first scrape."""
        at = self._scraped_at_seconds
        if at is None:
            return
        for pod, series in self._pods.items():
            labels = {"pod": pod, "container": CONTAINER}
            yield ScrapedSample(CADVISOR.cpu_usage_seconds_total, labels, at, series.cpu[-1][1])
            yield ScrapedSample(CADVISOR.cfs_periods_total, labels, at, series.periods[-1][1])
            yield ScrapedSample(CADVISOR.cfs_throttled_periods_total, labels, at, series.throttled[-1][1])
            yield ScrapedSample(CADVISOR.memory_working_set_bytes, labels, at, series.working_set)
            if series.buckets and series.buckets[-1][0] == at:
                counts = series.buckets[-1][1]
                for bound, count in zip([*LATENCY_BUCKETS_SECONDS, math.inf], counts, strict=True):
                    le = "+Inf" if math.isinf(bound) else repr(bound)
                    yield ScrapedSample(LATENCY_BUCKET_METRIC, {"pod": pod, "le": le}, at, count)
            if series.ok and series.ok[-1][0] == at:
                yield ScrapedSample(REQUESTS_METRIC, {"pod": pod, "code": OK_CODE}, at, series.ok[-1][1])
            if series.failed and series.failed[-1][0] == at:
                yield ScrapedSample(REQUESTS_METRIC, {"pod": pod, "code": FAILED_CODE}, at, series.failed[-1][1])
        if self.pool_enabled:
            server_active, client_waiting, max_wait_seconds = self._pool
            yield ScrapedSample(POOL_NAMES.server_active, {}, at, server_active)
            yield ScrapedSample(POOL_NAMES.client_waiting, {}, at, client_waiting)
            yield ScrapedSample(POOL_NAMES.max_wait_seconds, {}, at, max_wait_seconds)
            yield ScrapedSample(POOL_NAMES.pool_size, {}, at, self._pool_size_served)

    def evaluate(self, now: float, *, peaks_only: bool = False) -> None:
        """Evaluate every query at ``now`` (a step of the range query) and keep the values.

        ``peaks_only`` leaves out the latency and throttling queries, which no peak or history reads: for a
        step whose values will have left the kept signals before anyone reads them (a warm-up's steps before
        the ones it hands over). The rates of every pod's latency buckets are most of a step's work."""
        window = RATE_WINDOW_SECONDS
        self._drop_unselectable(oldest_seconds=now - window)
        values: dict[str, float | None] = dict.fromkeys(SIGNALS)

        def rate(samples: Sequence[tuple[float, float]]) -> float | None:
            return extrapolated_rate(samples, at_seconds=now, range_seconds=window)

        rated_pods = [*self._pods.values(), *self._deleted_pods.values()]
        # Every pod's buckets, ok and failed requests are series of their own, each rated on its own and
        # summed over pods (a series with fewer than two samples in the range has no rate yet).
        buckets = [0.0] * (len(LATENCY_BUCKETS_SECONDS) + 1)
        rated_buckets = False
        by_code: list[float] = []  # sum(rate(http_requests_total)) over the pods, per code series
        failed = 0.0
        for series in rated_pods:
            bucket_rates = None if peaks_only else extrapolated_rates(series.buckets, at_seconds=now,
                                                                      range_seconds=window)
            if bucket_rates is not None:
                rated_buckets = True
                for index, bucket_rate in enumerate(bucket_rates):
                    buckets[index] += bucket_rate
            ok_rate, failed_rate = rate(series.ok), rate(series.failed)
            by_code.extend(r for r in (ok_rate, failed_rate) if r is not None)
            failed += failed_rate or 0.0
        if rated_buckets:
            bounds = [*LATENCY_BUCKETS_SECONDS, math.inf]
            values["latency_p95_seconds"] = histogram_quantile(0.95, list(zip(bounds, buckets, strict=True)))
        if by_code:
            total = math.fsum(by_code)
            values["request_rate_per_second"] = total
            values["error_ratio"] = failed / total if total > 0 else math.nan
        cpu = [r for s in rated_pods if (r := rate(s.cpu)) is not None]
        if cpu:
            values["cpu_usage_millicores_per_pod"] = 1000.0 * math.fsum(cpu) / len(cpu)
            self._record_peak("peak_cpu_usage_millicores_total", now, 1000.0 * math.fsum(cpu))
            self.history_steps["cpu_history_seconds"].append(now)
        if self._has_limit and not peaks_only:
            shares = []
            for s in rated_pods:
                periods = rate(s.periods)
                throttled = rate(s.throttled)
                if periods and throttled is not None:
                    shares.append(throttled / periods)
            if shares:
                values["cpu_throttled_ratio"] = max(shares)
        if self._pods:
            values["memory_working_set_bytes_per_pod"] = max(s.working_set for s in self._pods.values())
            values["replicas"] = float(len(self._pods))
        if self.pool_enabled:
            values["pool_server_active"], values["pool_client_waiting"], values["pool_max_wait_seconds"] = self._pool
            values["pool_served_size_min"] = values["pool_served_size_max"] = self._pool_size_served
        for name, value in values.items():
            if value is not None:  # an empty instant vector: no point at this step
                self.signals[name].append((now, value))
        if self._step_largest_working_set is not None:
            self._record_peak("peak_memory_working_set_bytes_per_pod", now, self._step_largest_working_set)
        if values["request_rate_per_second"] is not None:
            self._record_peak("peak_request_rate_per_second", now, values["request_rate_per_second"])
        rate_now = values["request_rate_per_second"]
        if rate_now is not None:
            # `rate - rate offset 5m`: only where both steps have a value, as PromQL's vector matching.
            earlier = [v for stamp, v in self.signals["request_rate_per_second"]
                       if abs(stamp - (now - RISE_SPAN_SECONDS)) < 1e-6]
            if earlier:
                self._record_peak("peak_request_rate_rise_per_second", now, rate_now - earlier[-1])
        if self._step_largest_pool is not None:
            self._record_peak("peak_pool_demand_connections", now, math.fsum(self._step_largest_pool))
            self.history_steps["pool_history_seconds"].append(now)
        self._step_largest_working_set = self._step_largest_pool = None

    def peak(self, name: str, *, at_seconds: float, window_seconds: float) -> Peak:
        """The largest value of a peak signal over ``[at - window, at]``; Unknown with no sample there. Both ends
        count, as in ``history``: ``max_over_time`` over a subquery keeps a step on the range's start."""
        kept = self.peak_history[name]
        while kept and kept[0][0] < at_seconds - window_seconds:
            kept.popleft()
        if not kept or kept[0][0] > at_seconds:
            return Unknown(f"no samples in the last {window_seconds / 3600:g}h")
        return kept[0][1]

    def history(self, name: str, *, at_seconds: float, window_seconds: float) -> Peak:
        """Seconds of ``[at - window, at]`` with a reading of history ``name``'s signal (steps x the step);
        Unknown with none. Both ends count: Prometheus 2's subquery starts on the first aligned step at or
        after ``at - window`` and its range functions keep a point on the range's start."""
        kept = self.history_steps[name]
        while kept and kept[0] < at_seconds - window_seconds:
            kept.popleft()
        steps = len(kept)
        while steps and kept[steps - 1] > at_seconds:  # steps after ``at`` (none in a replay, which goes forward)
            steps -= 1
        if steps == 0:
            return Unknown(f"no samples in the last {window_seconds / 3600:g}h")
        return steps * STEP_SECONDS

    def observations(
        self, *, at_seconds: float, window_seconds: float, live: LiveConfig,
        peak_window_seconds: float = DEFAULT_PEAK_WINDOW_SECONDS,
    ) -> Observations:
        def signal(name: str) -> Signal:
            return to_signal(self.signals[name], at_seconds=at_seconds, window_seconds=window_seconds,
                             step_seconds=STEP_SECONDS)

        return Observations.of_signals(
            at=datetime.fromtimestamp(at_seconds, tz=UTC),
            window_seconds=window_seconds,
            step_seconds=STEP_SECONDS,
            rate_window_seconds=RATE_WINDOW_SECONDS,
            live=live,
            signals={name: signal(name) for name in SIGNALS},
            peak_window_seconds=peak_window_seconds,
            peaks={**{name: self.peak(name, at_seconds=at_seconds, window_seconds=peak_window_seconds)
                      for name in PEAK_SIGNALS},
                   **{name: self.history(name, at_seconds=at_seconds, window_seconds=peak_window_seconds)
                      for name in HISTORY_SIGNALS}},
        )
