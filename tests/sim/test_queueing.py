"""Erlang C and the latency distribution of the queueing model."""

from __future__ import annotations

import itertools
import math

import pytest

from perfpilot.sim.queueing import (
    LatencyMix,
    compute_cpu_sojourn_mean_seconds,
    draw_pool_instant,
    erlang_c,
    mixture_cdf,
    mixture_quantile,
)


def _erlang_c_by_factorials(servers: int, load: float) -> float:
    """The textbook closed form, independent of the recurrence the model uses."""
    top = load**servers / math.factorial(servers) * servers / (servers - load)
    bottom = sum(load**k / math.factorial(k) for k in range(servers)) + top
    return top / bottom


@pytest.mark.parametrize(("servers", "load", "expected"), [(1, 0.5, 0.5), (2, 1.0, 1 / 3), (10, 8.0, 0.40918)])
def test_erlang_c_matches_known_values(servers: int, load: float, expected: float) -> None:
    assert erlang_c(servers, load) == pytest.approx(expected, abs=5e-5)


@pytest.mark.parametrize(("servers", "load"), [(3, 2.2), (20, 12.0), (40, 39.0), (8, 0.3)])
def test_erlang_c_agrees_with_the_closed_form(servers: int, load: float) -> None:
    assert erlang_c(servers, load) == pytest.approx(_erlang_c_by_factorials(servers, load), rel=1e-9)


def test_erlang_c_is_certain_waiting_at_or_beyond_saturation() -> None:
    assert erlang_c(5, 5.0) == 1.0
    assert erlang_c(5, 6.0) == 1.0


def test_p95_of_an_exponential_sojourn_is_ln20_times_its_mean() -> None:
    mean = 0.2
    mix = LatencyMix(0.05, (1 / mean,), (1.0,), 0.0, 1.0)
    # The p95 of an exponential is ln(20) times its mean.
    assert mixture_quantile([(mix, 1.0)], 0.95) == pytest.approx(0.05 + math.log(20.0) * mean, rel=0.01)


def test_pool_waiting_moves_the_distribution_right() -> None:
    without = LatencyMix(0.1, (10.0,), (1.0,), 0.0, 5.0)
    waiting = LatencyMix(0.1, (10.0,), (1.0,), 0.6, 5.0)
    assert waiting.cdf(0.4) < without.cdf(0.4)
    assert waiting.cdf(60.0) == pytest.approx(1.0)
    assert waiting.cdf(0.1) == 0.0  # nothing is faster than the database time


def test_mixture_weights_the_ticks_by_requests() -> None:
    fast = LatencyMix(0.0, (100.0,), (1.0,), 0.0, 1.0)
    slow = LatencyMix(5.0, (100.0,), (1.0,), 0.0, 1.0)
    assert mixture_cdf([(fast, 3.0), (slow, 1.0)], 1.0) == pytest.approx(0.75, abs=1e-6)


@pytest.mark.parametrize(("servers", "load"), [(10, 4.8), (20, 6.0), (8, 7.5), (1, 0.5)])
def test_pool_instants_follow_mm_n_state_probabilities(servers: int, load: float) -> None:
    # An even grid of u stands for every instant: the draws' averages are M/M/N's expectations.
    grid = [(i + 0.5) / 20_000 for i in range(20_000)]
    instants = [draw_pool_instant(servers, load, u) for u in grid]
    wait, ratio = erlang_c(servers, load), load / servers
    assert sum(i.busy_servers for i in instants) / len(grid) == pytest.approx(load, rel=0.01)  # Little: A busy
    assert sum(i.busy_servers == servers for i in instants) / len(grid) == pytest.approx(wait, abs=0.001)
    assert sum(i.queued for i in instants) / len(grid) == pytest.approx(wait * ratio / (1 - ratio), rel=0.02, abs=1e-3)
    assert all(0 <= i.busy_servers <= servers and i.queued >= 0 for i in instants)
    assert all(i.queued == 0 for i in instants if i.busy_servers < servers)


def test_pool_instants_of_a_pool_past_709_offered_connections_still_average_the_load() -> None:
    # A^n / n! overflows a float from about 709 offered connections: every draw read as a full pool.
    grid = [(i + 0.5) / 1_000 for i in range(1_000)]
    instants = [draw_pool_instant(1021, 960.0, u) for u in grid]
    assert sum(i.busy_servers for i in instants) / len(grid) == pytest.approx(960.0, rel=0.01)


def test_the_largest_pool_instant_of_a_window_sits_above_the_mean_load() -> None:
    # Why the gauge is drawn and not the mean: pool shrinking reads the window's largest sv_active.
    instants = [draw_pool_instant(20, 6.0, (i + 0.5) / 30) for i in range(30)]
    assert max(i.busy_servers for i in instants) >= 10


DEMAND = 0.055


def _sojourn(cores: float, rate: float) -> float:
    return compute_cpu_sojourn_mean_seconds(demand_seconds=DEMAND, cores=cores, arrival_rate_per_second=rate)


def _sojourn_by_summing_the_chain(cores: float, rate: float, states: int = 4000) -> float:
    """E[N] / lambda of the birth-death chain with service rate min(n, C) / demand, summed state by state."""
    weights = [1.0]
    for n in range(1, states):
        weights.append(weights[-1] * rate * DEMAND / min(n, cores))
    return sum(n * w for n, w in enumerate(weights)) / sum(weights) / rate


@pytest.mark.parametrize(("cores", "rho"), [(0.45, 0.0), (0.45, 0.47), (0.45, 0.7), (0.75, 0.9), (0.3, 0.5)])
def test_cpu_sojourn_under_one_core_is_mm1_at_that_speed(cores: float, rho: float) -> None:
    # One request at a time on C < 1 core: a request takes demand / C at least.
    expected = DEMAND / (cores * (1.0 - rho))
    assert _sojourn(cores, rho * cores / DEMAND) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("rho", [0.0, 0.2, 0.47, 0.7, 0.9, 0.98])
def test_cpu_sojourn_of_one_core_is_the_mm1_mean(rho: float) -> None:
    assert _sojourn(1.0, rho / DEMAND) == pytest.approx(DEMAND / (1.0 - rho), rel=1e-12)


@pytest.mark.parametrize("cores", [2, 3, 4, 8])
@pytest.mark.parametrize("rho", [0.1, 0.47, 0.7, 0.95])
def test_cpu_sojourn_of_whole_cores_is_the_mmc_mean(cores: int, rho: float) -> None:
    load = rho * cores
    expected = DEMAND + _erlang_c_by_factorials(cores, load) * DEMAND / (cores - load)
    assert _sojourn(float(cores), load / DEMAND) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("cores", "rho"), [(1.5, 0.47), (1.5, 0.9), (2.7, 0.8), (4.5, 0.7), (0.45, 0.6)])
def test_cpu_sojourn_of_fractional_cores_is_the_chains_mean(cores: float, rho: float) -> None:
    rate = rho * cores / DEMAND
    assert _sojourn(cores, rate) == pytest.approx(_sojourn_by_summing_the_chain(cores, rate), rel=1e-9)


@pytest.mark.parametrize("rate", [5.0, 25.0, 34.0])
def test_cpu_sojourn_is_continuous_across_a_whole_number_of_cores(rate: float) -> None:
    at_two = _sojourn(2.0, rate)
    assert _sojourn(2.0 + 1e-9, rate) == pytest.approx(at_two, rel=1e-7)
    assert _sojourn(2.0 - 1e-9, rate) == pytest.approx(at_two, rel=1e-7)


@pytest.mark.parametrize("cores", [0.45, 1.0, 1.5, 2.0, 4.5])
def test_cpu_sojourn_grows_with_load_from_the_demand_alone(cores: float) -> None:
    rates = [cores / DEMAND * i / 50 for i in range(50)]
    means = [_sojourn(cores, rate) for rate in rates]
    assert means[0] == pytest.approx(DEMAND / min(1.0, cores), rel=1e-12)  # alone in the pod
    assert all(later > earlier for earlier, later in itertools.pairwise(means))


def test_cpu_sojourn_of_more_cores_at_the_same_load_lies_between_the_whole_numbers_around_it() -> None:
    rate = 0.7 * 4 / DEMAND
    assert _sojourn(5.0, rate) < _sojourn(4.5, rate) < _sojourn(4.0, rate)
    # A 4.5-core pod at 70% of its CPU is much faster than a 1-core pod at 70%.
    assert _sojourn(4.5, 0.7 * 4.5 / DEMAND) < 0.5 * _sojourn(1.0, 0.7 / DEMAND)


def test_cpu_sojourn_is_infinite_at_saturation_or_without_cpu() -> None:
    assert _sojourn(1.5, 1.5 / DEMAND) == math.inf
    assert _sojourn(0.0, 1.0) == math.inf


# --- proposed by the mutation audit (no extra imports needed) -------------------------------------------


def test_equal_cpu_and_wait_rates_give_the_erlang_2_cdf() -> None:
    # Exp(a) + Exp(b) with a = b is Erlang-2, 1 - e^(-ax) (1 + ax); the two-rate formula divides by b - a = 0.
    # At x = 0.2 s past the 0.1 s shift with a = b = 10/s, waiting with probability 0.4:
    # 0.6 (1 - e^-2) + 0.4 (1 - 3 e^-2).
    mix = LatencyMix(0.1, (10.0,), (1.0,), 0.4, 10.0)
    assert mix.cdf(0.3) == pytest.approx(0.6 * (1.0 - math.exp(-2.0)) + 0.4 * (1.0 - 3.0 * math.exp(-2.0)), rel=1e-12)
    # Rates a hair apart take the two-rate formula and agree with it: the branch is the formula's limit.
    assert LatencyMix(0.1, (10.0,), (1.0,), 0.4, 10.0 + 1e-6).cdf(0.3) == pytest.approx(mix.cdf(0.3), rel=1e-6)


def test_a_mixtures_quantile_can_lie_below_the_slowest_ticks_shift() -> None:
    # Nine requests in ten take 0.05 s + Exp(20/s), one in ten at least 5 s: the median is in the fast tick,
    # far under the slow tick's 5 s shift, so the bisection must start from the fastest shift.
    fast = LatencyMix(0.05, (20.0,), (1.0,), 0.0, 1.0)
    slow = LatencyMix(5.0, (20.0,), (1.0,), 0.0, 1.0)
    # 0.9 (1 - e^(-20 x)) = 0.5  =>  x = ln(0.9 / 0.4) / 20
    expected = 0.05 + math.log(0.9 / 0.4) / 20.0
    assert mixture_quantile([(fast, 9.0), (slow, 1.0)], 0.5) == pytest.approx(expected, rel=0.01)


def test_a_quantile_is_the_first_latency_whose_cdf_reaches_it() -> None:
    # The bisection returns its upper end: the returned latency is never short of q (the SLO check and the
    # p95 then agree on a latency at the quantile).
    mixes = [(LatencyMix(0.05, (5.0,), (1.0,), 0.3, 2.0), 1.0)]
    for q in (0.5, 0.95, 0.99):
        assert mixture_cdf(mixes, mixture_quantile(mixes, q)) >= q


def test_pod_groups_without_pool_waiting_are_weighted_by_their_share_of_requests() -> None:
    # A rollout: a quarter of the requests on pods at 20/s, three quarters on pods at 5/s, no pool wait. At
    # 0.1 s past the shift: 0.25 (1 - e^-2) + 0.75 (1 - e^-0.5), and every request is served in the end.
    mix = LatencyMix(0.05, (20.0, 5.0), (0.25, 0.75), 0.0, 1.0)
    expected = 0.25 * (1.0 - math.exp(-2.0)) + 0.75 * (1.0 - math.exp(-0.5))
    assert mix.cdf(0.15) == pytest.approx(expected, rel=1e-12)
    assert mix.cdf(60.0) == pytest.approx(1.0, rel=1e-12)


def test_the_quantile_of_a_mixture_with_no_shift_is_found_from_a_positive_lower_bound() -> None:
    # No database time: the log-scale bisection cannot start from 0 s (its midpoints would stay 0 and it would
    # return its upper bound, 120 s); the p95 of Exp(5/s) alone is ln(20) / 5.
    mix = LatencyMix(0.0, (5.0,), (1.0,), 0.0, 1.0)
    assert mixture_quantile([(mix, 1.0)], 0.95) == pytest.approx(math.log(20.0) / 5.0, rel=0.01)


@pytest.mark.parametrize("near_seconds",
                         [None, 1.07, 1.08, 1.0752, 0.2, 0.6, 3.0, 1e-4, 0.12, 119.0, 120.0, 0.0, 500.0])
def test_a_quantile_does_not_depend_on_where_it_is_looked_for_first(near_seconds: float | None) -> None:
    # The replay passes the last minute's p95 as the place to start; a guess far off, on a bound or outside
    # them changes the work, never the answer (to the relative tolerance).
    mixes = [(LatencyMix(0.12, (18.0, 6.0), (0.7, 0.3), 0.25, 3.0, (0.0, 0.05)), 40.0),
             (LatencyMix(0.12, (15.0,), (1.0,), 0.4, 2.0), 60.0)]
    found = mixture_quantile(mixes, 0.95, near_seconds=near_seconds)
    assert mixture_cdf(mixes, found) >= 0.95
    assert mixture_cdf(mixes, found * (1 - 2e-7)) < 0.95
    assert found == pytest.approx(mixture_quantile(mixes, 0.95), rel=2e-7)


def test_a_quantile_beyond_the_upper_bound_is_the_bound_whatever_the_guess() -> None:
    stuck = [(LatencyMix(200.0, (5.0,), (1.0,), 0.0, 1.0), 1.0)]
    assert mixture_quantile(stuck, 0.95) == 120.0
    assert mixture_quantile(stuck, 0.95, near_seconds=3.0) == 120.0
    # Reachable from the guess only by stepping up to the bound: the p95 is 100 + ln(20) / 0.05 = 160 s.
    slow = [(LatencyMix(100.0, (0.05,), (1.0,), 0.0, 1.0), 1.0)]
    assert mixture_quantile(slow, 0.95, near_seconds=110.0) == 120.0
    assert mixture_quantile(slow, 0.5, near_seconds=110.0) == pytest.approx(100.0 + math.log(2.0) / 0.05, rel=1e-6)


def test_a_quantile_asked_finer_than_floats_go_still_ends() -> None:
    mixes = [(LatencyMix(0.05, (5.0,), (1.0,), 0.3, 2.0), 1.0)]
    found = mixture_quantile(mixes, 0.95, relative_tolerance=0.0)
    assert found == pytest.approx(mixture_quantile(mixes, 0.95), rel=1e-7)


def test_a_point_mass_has_its_latency_as_every_quantile() -> None:
    at_timeout = [(LatencyMix.point_mass(10.0), 1.0)]
    for near_seconds in (None, 1.0, 10.0, 50.0):
        found = mixture_quantile(at_timeout, 0.95, near_seconds=near_seconds)
        assert found == pytest.approx(10.0, rel=1e-6)
        assert mixture_cdf(at_timeout, found) >= 0.95
