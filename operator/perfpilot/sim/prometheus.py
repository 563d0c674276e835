"""What Prometheus would hold about the model cluster, and the reader's queries over it.

Every tick the model is "scraped": per pod the cAdvisor counters (CPU seconds, CFS periods and throttled
periods) and the working-set gauge; per workload the latency histogram's bucket counters and the request
and error counters; the pgBouncer exporter's gauges. At every step (60 s, the reader's default) the
reader's PromQL is evaluated over those samples, as ``perfpilot.observe.promql`` writes it:

- ``histogram_quantile(0.95, sum by (le) (rate(bucket[2m])))`` — with ``observe.series.histogram_quantile``;
- ``rate(requests[2m])``, failed over all;
- ``1000 * avg by (workload) (rate(cpu_seconds[2m]))`` per pod, ``max`` of throttled/periods per pod,
  ``max`` of the working set, ``count`` of pods with CPU series;
- the pool gauges' latest samples.

``rate()`` here is Prometheus' extrapolated rate for regularly scraped counters without resets: the
increase between the first and last samples in the range over the time between them (the extrapolation
to the range's edges cancels out). ``observe.series`` has no rate helper, so this one lives here.
Each step's values are kept, and ``observations()`` cuts the profile's window and turns each signal into
a ``Series`` or ``Unknown`` with ``observe.series.to_signal`` — exactly the reader's last step.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from perfpilot.observe.series import histogram_quantile, to_signal
from perfpilot.sim.cluster import Cluster, TickOutcome
from perfpilot.tuning.observations import LiveConfig, Observations, Peak, Signal, Unknown

# prometheus_client's default histogram buckets, which most Python services export unchanged.
LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
RATE_WINDOW_SECONDS = 120.0  # the reader's default rate_window_seconds
STEP_SECONDS = 60.0  # the reader's default step_seconds
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
)


# The peaks over guardrails.peakWindow: the Observations field and the per-step value it is the maximum of.
PEAK_SIGNALS = (
    "peak_cpu_usage_millicores_total",  # sum over pods of rate(cpu_seconds), millicores
    "peak_memory_working_set_bytes_per_pod",  # the largest pod's working set
    "peak_request_rate_per_second",
    "peak_pool_demand_connections",  # server active + clients waiting
)


def _rate(samples: Sequence[tuple[float, float]], *, now: float, window: float) -> float | None:
    inside = [s for s in samples if s[0] > now - window]
    if len(inside) < 2:
        return None
    (t0, v0), (t1, v1) = inside[0], inside[-1]
    return (v1 - v0) / (t1 - t0)


@dataclass
class _PodSeries:
    cpu: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=12))
    throttled: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=12))
    periods: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=12))
    working_set: float = 0.0


@dataclass
class Prometheus:
    """Raw samples of one workload and its pool, and the evaluated signal at every step."""

    pool_enabled: bool = True
    history_points: int = 64  # enough for a 60 m window at a 60 s step
    _pods: dict[str, _PodSeries] = field(default_factory=dict)
    _buckets: deque[tuple[float, tuple[float, ...]]] = field(default_factory=lambda: deque(maxlen=12))
    _counts: list[float] = field(default_factory=lambda: [0.0] * (len(LATENCY_BUCKETS_SECONDS) + 2))
    _pool: tuple[float, float, float] = (0.0, 0.0, 0.0)
    _has_limit: bool = True
    signals: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    # The step values of the peak signals that can still be the maximum of a later window (a sliding-window
    # maximum: each entry is larger than every later one), for the ``max_over_time(...[peakWindow:step])``
    # subqueries of the reader. A warm-up replay before the window fills it. Peak windows are asked for with
    # start times that never go back, which is what lets old entries go.
    peak_history: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signals = {name: deque(maxlen=self.history_points) for name in SIGNALS}
        self.peak_history = {name: deque() for name in PEAK_SIGNALS}

    def continue_from(self, earlier: Prometheus) -> None:
        """Keep ``earlier``'s peak history (a warm-up replay before the window): Prometheus already has it."""
        for name, samples in earlier.peak_history.items():
            for stamp, value in samples:
                self._record_peak(name, stamp, value)

    def _record_peak(self, name: str, stamp: float, value: float) -> None:
        kept = self.peak_history[name]
        while kept and kept[-1][1] <= value:
            kept.pop()
        kept.append((stamp, value))

    def scrape(self, *, cluster: Cluster, tick: TickOutcome, now: float) -> None:
        """Record the samples at ``now``, the end of ``tick``."""
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
            del self._pods[gone]  # a deleted pod's series go stale at once (staleness markers)
        self._has_limit = all(p.resources.cpu_limit_millicores for p in cluster.pods)

        counts = self._counts
        ok = tick.requests - tick.failed
        mix = tick.latency
        for index, bound in enumerate(LATENCY_BUCKETS_SECONDS):
            counts[index] += ok * mix.cdf(bound)
        counts[-2] += tick.requests  # +Inf bucket: failed requests are observed at the timeout
        counts[-1] += tick.failed  # the error counter
        self._buckets.append((now, tuple(counts)))
        self._pool = (tick.pool_server_active, tick.pool_client_waiting, tick.pool_max_wait_seconds)

    def evaluate(self, now: float) -> None:
        """Evaluate every query at ``now`` (a step of the range query) and keep the values."""
        window = RATE_WINDOW_SECONDS
        values: dict[str, float | None] = dict.fromkeys(SIGNALS)
        inside = [s for s in self._buckets if s[0] > now - window]
        if len(inside) >= 2:
            (t0, c0), (t1, c1) = inside[0], inside[-1]
            span = t1 - t0
            rates = [(c1[i] - c0[i]) / span for i in range(len(c0))]
            total = rates[-2]
            bounds = [*LATENCY_BUCKETS_SECONDS, math.inf]
            values["latency_p95_seconds"] = histogram_quantile(0.95, list(zip(bounds, rates[:-1], strict=True)))
            values["request_rate_per_second"] = total
            values["error_ratio"] = rates[-1] / total if total > 0 else math.nan
        cpu = [r for s in self._pods.values() if (r := _rate(s.cpu, now=now, window=window)) is not None]
        if cpu:
            values["cpu_usage_millicores_per_pod"] = 1000.0 * math.fsum(cpu) / len(cpu)
            self._record_peak("peak_cpu_usage_millicores_total", now, 1000.0 * math.fsum(cpu))
        if self._has_limit:
            shares = []
            for s in self._pods.values():
                periods = _rate(s.periods, now=now, window=window)
                throttled = _rate(s.throttled, now=now, window=window)
                if periods and throttled is not None:
                    shares.append(throttled / periods)
            if shares:
                values["cpu_throttled_ratio"] = max(shares)
        if self._pods:
            values["memory_working_set_bytes_per_pod"] = max(s.working_set for s in self._pods.values())
            values["replicas"] = float(len(self._pods))
        if self.pool_enabled:
            values["pool_server_active"], values["pool_client_waiting"], values["pool_max_wait_seconds"] = self._pool
        for name, value in values.items():
            if value is not None:  # an empty instant vector: no point at this step
                self.signals[name].append((now, value))
        for peak, signal in (("peak_memory_working_set_bytes_per_pod", "memory_working_set_bytes_per_pod"),
                             ("peak_request_rate_per_second", "request_rate_per_second")):
            value = values[signal]
            if value is not None:
                self._record_peak(peak, now, value)
        active, waiting = values["pool_server_active"], values["pool_client_waiting"]
        if active is not None and waiting is not None:
            self._record_peak("peak_pool_demand_connections", now, active + waiting)

    def peak(self, name: str, *, at_seconds: float, window_seconds: float) -> Peak:
        """The largest value of a peak signal over ``(at - window, at]``; Unknown with no sample there."""
        kept = self.peak_history[name]
        while kept and kept[0][0] <= at_seconds - window_seconds:
            kept.popleft()
        if not kept or kept[0][0] > at_seconds:
            return Unknown(f"no samples in the last {window_seconds / 3600:g}h")
        return kept[0][1]

    def observations(
        self, *, at_seconds: float, window_seconds: float, live: LiveConfig, peak_window_seconds: float = 86400.0
    ) -> Observations:
        def signal(name: str) -> Signal:
            return to_signal(self.signals[name], at_seconds=at_seconds, window_seconds=window_seconds,
                             step_seconds=STEP_SECONDS)

        return Observations.of_signals(
            at=datetime.fromtimestamp(at_seconds, tz=UTC),
            window_seconds=window_seconds,
            step_seconds=STEP_SECONDS,
            live=live,
            signals={name: signal(name) for name in SIGNALS},
            peak_window_seconds=peak_window_seconds,
            peaks={name: self.peak(name, at_seconds=at_seconds, window_seconds=peak_window_seconds)
                   for name in PEAK_SIGNALS},
        )
