"""Derived signals and the small statistics the rules use — the one place they are computed.

Everything works on the plain tuples inside ``Series`` (no model construction), because the simulator
calls ``decide()`` thousands of times per run. A derived signal is ``Unknown`` whenever an input is,
with the reason carried through, so the rules can say what blocked them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from perfpilot.tuning.observations import LiveConfig, Observations, Series, Signal, Unknown


def _scaled(signal: Signal, *, factor: float, what: str) -> Signal:
    if isinstance(signal, Unknown):
        return Unknown(f"{what}: {signal.reason}")
    return Series(signal.timestamps_seconds, tuple(value * factor for value in signal.values))


def _why_no_request(observations: Observations, resource: str) -> str:
    return (f"a container has no {resource} request" if observations.live.containers
            else "the pod's containers are not known (no workload given)")


def compute_cpu_utilisation_percent(observations: Observations) -> Signal:
    """CPU usage per pod over the pod's CPU request, percent — what the HPA compares with its target."""
    request = observations.live.cpu_request_millicores_per_pod
    if not request:
        return Unknown("cpu utilisation: " + _why_no_request(observations, "CPU"))
    return _scaled(observations.cpu_usage_millicores_per_pod, factor=100.0 / request, what="cpu utilisation")


def compute_memory_utilisation_percent(observations: Observations) -> Signal:
    """Working set of the largest pod over the pod's memory request, percent."""
    request = observations.live.memory_request_bytes_per_pod
    if not request:
        return Unknown("memory utilisation: " + _why_no_request(observations, "memory"))
    return _scaled(
        observations.memory_working_set_bytes_per_pod, factor=100.0 / request, what="memory utilisation"
    )


def compute_pool_capacity_connections(live: LiveConfig) -> int | None:
    """Server connections the pool may hold in steady state: default_pool_size on every pooler replica."""
    if live.pool is None:
        return None
    return live.pool.default_pool_size * max(1, live.pool.pooler_replicas)


def compute_pool_utilisation_percent(observations: Observations) -> Signal:
    """Server connections in use (summed over pooler replicas) over default_pool_size x replicas, percent."""
    capacity = compute_pool_capacity_connections(observations.live)
    if not capacity:
        return Unknown("pool utilisation: no live pool configuration")
    return _scaled(observations.pool_server_active, factor=100.0 / capacity, what="pool utilisation")


@dataclass(frozen=True)
class PoolServed:
    """The pool size pgBouncer serves for the database, over the pooler pods: at the latest sample, and since
    when every pod has served ``size`` without a break (None: not every pod serves it now), that run starting
    at the first reading or not (``throughout``: it may have begun before the readings reach back)."""

    smallest: int
    largest: int
    size: int
    since_seconds: float | None
    throughout: bool = False

    @property
    def by_some_pod(self) -> bool:
        """Whether some pod may serve ``size`` now (it lies between the smallest and the largest served)."""
        return self.smallest <= self.size <= self.largest

    def describe(self) -> str:
        if self.smallest == self.largest:
            return f"pgBouncer serves pool size {self.smallest} on every pooler pod"
        return f"pgBouncer serves pool sizes {self.smallest} to {self.largest} over the pooler pods"


def compute_pool_served(observations: Observations, *, size: int) -> PoolServed | Unknown:
    """What pgBouncer serves against ``size`` (the size written), from the exporter's pool-size readings;
    Unknown when they are not read (the ConfigMap's size is then taken as served, as it always was)."""
    smallest, largest = observations.pool_served_size_min, observations.pool_served_size_max
    if isinstance(smallest, Unknown):
        return Unknown(f"pool size served: {smallest.reason}")
    if isinstance(largest, Unknown):
        return Unknown(f"pool size served: {largest.reason}")
    largest_at = dict(zip(largest.timestamps_seconds, largest.values, strict=True))
    steps = [(t, low, largest_at[t]) for t, low in zip(smallest.timestamps_seconds, smallest.values, strict=True)
             if t in largest_at]
    if not steps:
        return Unknown("pool size served: the smallest and largest readings share no timestamp")
    since: float | None = None
    throughout = True
    for stamp, low, high in reversed(steps):
        if low != size or high != size:
            throughout = False
            break
        since = stamp
    _, low_now, high_now = steps[-1]
    return PoolServed(smallest=round(low_now), largest=round(high_now), size=size, since_seconds=since,
                      throughout=since is not None and throughout)


def compute_pool_demand_connections(observations: Observations) -> Signal:
    """Connections wanted at each step: server-active plus clients waiting for one."""
    active = observations.pool_server_active
    waiting = observations.pool_client_waiting
    if isinstance(active, Unknown):
        return Unknown(f"pool demand: {active.reason}")
    if isinstance(waiting, Unknown):
        return Unknown(f"pool demand: {waiting.reason}")
    if active.timestamps_seconds == waiting.timestamps_seconds:
        summed = tuple(a + w for a, w in zip(active.values, waiting.values, strict=True))
        return Series(active.timestamps_seconds, summed)
    waiting_at = dict(zip(waiting.timestamps_seconds, waiting.values, strict=True))
    pairs = [(t, a + waiting_at[t]) for t, a in zip(active.timestamps_seconds, active.values, strict=True)
             if t in waiting_at]
    if not pairs:
        # Misaligned scrapes: the sum of the two peaks is an upper bound, the safe side for sizing up.
        return Series((active.timestamps_seconds[-1],), (active.maximum + waiting.maximum,))
    return Series(tuple(t for t, _ in pairs), tuple(v for _, v in pairs))


def recent(signal: Signal, *, now_seconds: float, span_seconds: float) -> Signal:
    """The samples of the last ``span_seconds`` (inclusive of the sample exactly at the start)."""
    if isinstance(signal, Unknown):
        return signal
    if signal.timestamps_seconds[0] >= now_seconds - span_seconds:
        return signal
    return signal.since(now_seconds - span_seconds)


def fills_share_of_steps(samples: Series, *, span_seconds: float, step_seconds: float, share: float) -> bool:
    """Whether ``samples`` (a span's, already cut to it) number at least ``share`` of the steps the span holds:
    a mean or a share over a span is evidence only when the span is there (one sample in ten minutes is not)."""
    steps = math.floor(span_seconds / step_seconds) + 1
    return len(samples.values) >= share * steps


def compute_mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def compute_median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def compute_cv(values: Sequence[float]) -> float:
    """Coefficient of variation (population standard deviation over mean); 0 for a flat or zero signal."""
    mean = compute_mean(values)
    if mean <= 0:
        return 0.0
    variance = math.fsum((value - mean) ** 2 for value in values) / len(values)
    return math.sqrt(variance) / mean


def compute_linear_fit(series: Series) -> tuple[float, float]:
    """Least-squares slope (units per second) and R² of a series; (0, 0) when time does not vary."""
    times = series.timestamps_seconds
    values = series.values
    count = len(values)
    mean_t = math.fsum(times) / count
    mean_v = math.fsum(values) / count
    s_tt = math.fsum((t - mean_t) ** 2 for t in times)
    if s_tt == 0:
        return 0.0, 0.0
    s_tv = math.fsum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True))
    s_vv = math.fsum((v - mean_v) ** 2 for v in values)
    slope = s_tv / s_tt
    r_squared = 1.0 if s_vv == 0 else (s_tv * s_tv) / (s_tt * s_vv)
    return slope, r_squared


def compute_fraction(values: Sequence[float], predicate: Callable[[float], bool]) -> float:
    return sum(1 for value in values if predicate(value)) / len(values)


def compute_waiting_fraction(waiting: Sequence[float]) -> float:
    """The share of samples with a client waiting for a server connection."""
    return compute_fraction(waiting, lambda clients: clients > 0)


def compute_direction_reversals(values: Sequence[float]) -> int:
    """How often a step series turns from rising to falling or back (flat steps are ignored)."""
    reversals = 0
    last_direction = 0
    previous = values[0]
    for value in values[1:]:
        direction = (value > previous) - (value < previous)
        if direction:
            if last_direction and direction != last_direction:
                reversals += 1
            last_direction = direction
        previous = value
    return reversals


def compute_rise_multiple(series: Series, *, span_seconds: float, floor: float) -> float:
    """Largest ratio of a sample to the sample ``span_seconds`` (or more) before it; 1 when none.

    The earlier sample counts as at least ``floor`` (the caller passes the window's median), so a quiet
    night going from 0.1 to 0.3 requests per second is not a "flash crowd".
    """
    best = 1.0
    times = series.timestamps_seconds
    values = series.values
    start = 0
    for index, time in enumerate(times):
        while start + 1 < index and times[start + 1] <= time - span_seconds:
            start += 1
        before = max(values[start], floor)
        if times[start] <= time - span_seconds and before > 0:
            best = max(best, values[index] / before)
    return best
