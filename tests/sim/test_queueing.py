"""Erlang C and the latency distribution of the queueing model."""

from __future__ import annotations

import math

import pytest

from perfpilot.sim.queueing import (
    LN_20,
    LatencyMix,
    draw_pool_instant,
    erlang_c,
    mean_wait_seconds,
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
    assert mean_wait_seconds(servers=5, offered_load=6.0, holding_seconds=0.1) == math.inf


def test_mean_wait_of_one_server_is_the_mm1_formula() -> None:
    # M/M/1: Wq = rho / (mu - lambda); with rho 0.5 and a 0.1 s service time, 0.1 s.
    assert mean_wait_seconds(servers=1, offered_load=0.5, holding_seconds=0.1) == pytest.approx(0.1)


def test_p95_of_an_exponential_sojourn_is_ln20_times_its_mean() -> None:
    mean = 0.2
    mix = LatencyMix(0.05, (1 / mean,), (1.0,), 0.0, 1.0)
    assert mixture_quantile([(mix, 1.0)], 0.95) == pytest.approx(0.05 + LN_20 * mean, rel=0.01)


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


def test_the_largest_pool_instant_of_a_window_sits_above_the_mean_load() -> None:
    # Why the gauge is drawn and not the mean: pool shrinking reads the window's largest sv_active.
    instants = [draw_pool_instant(20, 6.0, (i + 0.5) / 30) for i in range(30)]
    assert max(i.busy_servers for i in instants) >= 10
