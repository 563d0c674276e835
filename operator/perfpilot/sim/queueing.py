"""Queueing formulas for the cluster model: Erlang C for the pool, a C-core sojourn for CPU.

A request's latency is ``database time + CPU sojourn + pool wait + backlog delay``:

- **CPU sojourn**: each ready pod has ``C`` cores (the CPU it gets, possibly fractional) shared by the
  requests in it, each single-threaded: on at most one core, so never faster than its demand, and on a pod
  under one core never faster than ``demand / C``. The sojourn is exponential with the mean of that
  birth-death chain (``compute_cpu_sojourn_mean_seconds``: M/M/1 at one core, M/M/c at ``c`` cores).
- **Pool wait** (pgBouncer transaction pooling): ``N`` server connections each held for the database
  time; an arriving transaction waits with the Erlang-C probability ``C(N, A)`` for an exponential time
  with rate ``(N - A) / db_time``, where ``A`` is the offered load in connections (M/M/N).
- **Backlog delay**: when offered work exceeds capacity the queue grows without bound in theory; the
  model keeps a fluid backlog per pod size and adds ``backlog / capacity`` to every request that group
  serves (see ``cluster.py``).

The latency distribution of one 15 s tick is a mixture over pod groups (pods of different sizes during
a rollout) of ``shift + group shift + Exp(a) [+ Exp(b) with probability C]``; its CDF is closed-form, so
histogram buckets, the SLO check and the p95 are exact for the model, with no sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def erlang_b(servers: int, offered_load: float) -> float:
    """Blocking probability of M/M/N/N by the stable recurrence B(k) = A B(k-1) / (k + A B(k-1))."""
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    return blocking


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in M/M/N (Erlang C); 1 when the load reaches the servers."""
    if servers <= 0 or offered_load >= servers:
        return 1.0
    if offered_load <= 0:
        return 0.0
    blocking = erlang_b(servers, offered_load)
    return servers * blocking / (servers - offered_load * (1.0 - blocking))


@dataclass(frozen=True, slots=True)
class PoolInstant:
    """The pool's gauges at one scrape: server connections in use and transactions waiting for one."""

    busy_servers: int
    queued: int


def draw_pool_instant(servers: int, offered_load: float, u: float) -> PoolInstant:
    """M/M/N's state at a random instant, from one uniform draw ``u`` in [0, 1), by the inverse CDF.

    pgBouncer's sv_active and cl_waiting are counts at the scrape, not means, so their largest value over a
    window sits well above the mean load. With C = Erlang C and r = A/N: every server is busy with
    probability C, and then P(queue >= k) = C r^k; otherwise n < N servers are busy with probability
    proportional to A^n / n! (the state probabilities of M/M/N below N).
    """
    if servers <= 0:
        return PoolInstant(0, 0)
    load = max(0.0, min(offered_load, servers))
    wait = erlang_c(servers, load) if load > 0 else 0.0
    if u < wait:
        ratio = load / servers
        queued = math.floor(math.log(u / wait) / math.log(ratio)) if 0.0 < u < wait * ratio < 1.0 else 0
        return PoolInstant(servers, queued)
    # u is uniform on [wait, 1): rescaled, it picks n < N from the truncated Poisson weights.
    target = (u - wait) / (1.0 - wait) if wait < 1.0 else 0.0
    if load <= 0:
        return PoolInstant(0, 0)
    # A^n / n! overflows a float past about 709 offered connections: the weights are taken relative to the
    # largest, in logarithms.
    logs = [n * math.log(load) - math.lgamma(n + 1) for n in range(servers)]
    top = max(logs)
    weights = [math.exp(value - top) for value in logs]
    total = sum(weights)
    cumulative = 0.0
    for n, weight in enumerate(weights):
        cumulative += weight / total
        if target < cumulative:
            return PoolInstant(n, 0)
    return PoolInstant(servers - 1, 0)


def compute_cpu_sojourn_mean_seconds(*, demand_seconds: float, cores: float, arrival_rate_per_second: float) -> float:
    """Mean CPU sojourn of a request in a pod with ``cores`` CPUs (possibly fractional), each request
    single-threaded (on at most one core at a time) and the cores shared by the requests in the pod.

    The pod is a birth-death chain: arrivals at ``lambda``, and with ``n`` requests in it the service rate
    ``min(n, C) / demand``. With ``a = lambda x demand``, ``k = floor(C)``, ``rho = a / C``, its stationary
    distribution is ``p(n) ~ a^n / n!`` up to ``k``, then a geometric tail ``p(k + m) = p(k) rho^m``. The busy
    cores average ``a`` (flow balance), so ``E[N] = a + sum over n > k of p(n) (n - C)``, which with
    ``f = C - k`` is ``a + p(k) rho (1 / (1 - rho)^2 - f / (1 - rho))``; ``p(k)`` follows from Erlang B as
    ``B (1 - rho) / (1 - rho + B rho)``, ``B = erlang_b(k, a)``. Little's law gives
    ``E[T] = E[N] / lambda = demand + p(k) (demand / C) (1 / (1 - rho)^2 - f / (1 - rho))``, which holds at
    ``lambda = 0`` too. One core gives M/M/1's ``demand / (1 - rho)``; under one core, M/M/1 at that speed,
    ``demand / (C (1 - rho))``; an integer ``c`` gives M/M/c's ``demand + ErlangC(c, a) demand / (c - a)``.

    Infinite at or beyond saturation (``rho >= 1``) or without CPU.
    """
    if cores <= 0:
        return math.inf
    load = max(0.0, arrival_rate_per_second) * demand_seconds
    rho = load / cores
    if rho >= 1.0:
        return math.inf
    whole = math.floor(cores)
    fraction = cores - whole
    blocking = erlang_b(whole, load)
    at_whole = blocking * (1.0 - rho) / (1.0 - rho + blocking * rho)  # p(k)
    tail = 1.0 / (1.0 - rho) ** 2 - fraction / (1.0 - rho)
    return demand_seconds + at_whole * demand_seconds / cores * tail


@dataclass(frozen=True, slots=True)
class LatencyMix:
    """The latency distribution of one tick (see the module docstring)."""

    shift_seconds: float  # database time + the pool's backlog delay: every request pays it
    cpu_rates_per_second: tuple[float, ...]  # exponential rate of the CPU sojourn, per pod group
    group_weights: tuple[float, ...]  # share of requests served by each group (sums to 1)
    wait_probability: float  # Erlang C of the pool
    wait_rate_per_second: float  # exponential rate of the pool wait when waiting
    # The CPU backlog delay of each group's requests (its own queue), on top of shift_seconds; () for none.
    group_shifts_seconds: tuple[float, ...] = ()

    @classmethod
    def point_mass(cls, seconds: float) -> LatencyMix:
        """Every request takes exactly ``seconds`` (an infinitely fast CPU sojourn, no pool wait)."""
        return cls(seconds, (math.inf,), (1.0,), 0.0, 1.0)

    def cdf(self, latency_seconds: float) -> float:
        c = self.wait_probability
        b = self.wait_rate_per_second
        shifts = self.group_shifts_seconds or (0.0,) * len(self.group_weights)
        total = 0.0
        for a, weight, group_shift in zip(self.cpu_rates_per_second, self.group_weights, shifts, strict=True):
            x = latency_seconds - self.shift_seconds - group_shift
            if x <= 0:
                continue
            cpu_only = 1.0 - math.exp(-a * x)
            if c <= 0.0:
                total += weight * cpu_only
                continue
            if abs(a - b) < 1e-9 * max(a, b):
                with_wait = 1.0 - math.exp(-a * x) * (1.0 + a * x)  # Erlang-2 when the two rates coincide
            else:
                with_wait = 1.0 - (b * math.exp(-a * x) - a * math.exp(-b * x)) / (b - a)
            total += weight * ((1.0 - c) * cpu_only + c * with_wait)
        return total


def mixture_cdf(mixes: Sequence[tuple[LatencyMix, float]], latency_seconds: float) -> float:
    """CDF of several ticks' distributions weighted by their request counts."""
    total_weight = sum(weight for _, weight in mixes)
    if total_weight <= 0:
        return 1.0
    return sum(mix.cdf(latency_seconds) * weight for mix, weight in mixes) / total_weight


def mixture_quantile(
    mixes: Sequence[tuple[LatencyMix, float]], q: float, *, upper_seconds: float = 120.0,
    near_seconds: float | None = None, relative_tolerance: float = 1e-7,
) -> float:
    """The ``q`` quantile of ``mixture_cdf``: the latency, to ``relative_tolerance`` (1e-12 at the finest),
    whose CDF first reaches ``q`` (never one short of it, so the SLO check and the p95 agree at the
    quantile); NaN with no weight.

    Found on a log scale by regula falsi with the Illinois fix (the end that stays put twice has its value
    halved, so both ends close in), from a bracket around ``near_seconds`` when given (the last minute's
    p95: a replay asks once a minute and the p95 moves little, so the bracket is a few percent wide), else
    from the fastest shift to ``upper_seconds``. The CDF is smooth wherever its rates are finite, where this
    takes a handful of evaluations where bisection to the same tolerance took two dozen.
    """
    if sum(weight for _, weight in mixes) <= 0:
        return math.nan
    floor_seconds = max(min(mix.shift_seconds for mix, _ in mixes), 1e-4)
    if not floor_seconds < upper_seconds:
        return upper_seconds

    def excess(log_seconds: float) -> float:
        return mixture_cdf(mixes, math.exp(log_seconds)) - q

    lowest, highest = math.log(floor_seconds), math.log(upper_seconds)
    if near_seconds is not None and floor_seconds < near_seconds < upper_seconds:
        # Step out from the guess, each step four times the last, until the quantile is between two points.
        step = math.log(1.02)
        middle = math.log(near_seconds)
        at_middle = excess(middle)
        if at_middle >= 0:
            high, at_high = middle, at_middle
            while True:
                low = max(high - step, lowest)
                at_low = excess(low)
                if at_low < 0:
                    break
                if low <= lowest:
                    return math.exp(low)  # the point the CDF was found to reach q at, never one short
                high, at_high, step = low, at_low, 4 * step
        else:
            low, at_low = middle, at_middle
            while True:
                high = min(low + step, highest)
                at_high = excess(high)
                if at_high >= 0:
                    break
                if high >= highest:
                    return upper_seconds
                low, at_low, step = high, at_high, 4 * step
    else:
        high, at_high = highest, excess(highest)
        if at_high < 0:
            return upper_seconds
        low, at_low = lowest, excess(lowest)
        if at_low >= 0:
            return math.exp(low)
    # Below about 1e-15 two neighbouring floats would be further apart than the tolerance and the loop
    # would never end.
    tolerance = math.log1p(max(relative_tolerance, 1e-12))
    last_moved = ""  # the end the last step moved: the other one, left in place twice running, is halved
    while high - low > tolerance:
        point = high - at_high * (high - low) / (at_high - at_low) if at_high != at_low else 0.5 * (low + high)
        if not low < point < high:
            point = 0.5 * (low + high)
        at_point = excess(point)
        if at_point >= 0:
            high, at_high = point, at_point
            if last_moved == "high":
                at_low *= 0.5
            last_moved = "high"
        else:
            low, at_low = point, at_point
            if last_moved == "low":
                at_high *= 0.5
            last_moved = "low"
    return math.exp(high)
