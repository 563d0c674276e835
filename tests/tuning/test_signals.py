"""The engine's pure estimators (tuning/signals.py, tuning/guardrails.py), each on a table worked out by hand."""

from __future__ import annotations

import pytest

from perfpilot.tuning.guardrails import (
    compute_coupled_cpu_target,
    compute_pool_reserve,
    compute_scaled_quantity,
    compute_target_step,
)
from perfpilot.tuning.observations import Series
from perfpilot.tuning.signals import (
    compute_cv,
    compute_direction_reversals,
    compute_linear_fit,
    compute_median,
    compute_rise_multiple,
    compute_waiting_fraction,
    fills_share_of_steps,
)

MIB = 2**20


@pytest.mark.parametrize(("values", "median"), [([5.0], 5.0), ([3.0, 1.0, 2.0], 2.0), ([4.0, 1.0, 3.0, 2.0], 2.5)])
def test_the_median_is_the_middle_value_or_the_mean_of_the_two_middle_ones(values: list[float], median: float) -> None:
    assert compute_median(values) == median


@pytest.mark.parametrize(("values", "cv"), [
    ([100.0, 100.0], 0.0),
    ([50.0, 150.0], 0.5),  # population standard deviation 50 over the mean 100
    ([1.0, 2.0, 3.0, 4.0], 0.4472136),  # sqrt(1.25) / 2.5
    ([0.0, 0.0], 0.0),  # no load: no variation to speak of
])
def test_the_coefficient_of_variation_is_the_population_deviation_over_the_mean(values: list[float], cv: float) -> None:
    assert compute_cv(values) == pytest.approx(cv, rel=1e-6)


@pytest.mark.parametrize(("stamps", "values", "slope", "r_squared"), [
    ((0.0, 60.0, 120.0), (1.0, 2.0, 3.0), 1 / 60, 1.0),  # one unit a minute, a perfect line
    ((0.0, 60.0, 120.0), (0.0, 2.0, 1.0), 1 / 120, 0.25),  # s_tv 60 / s_tt 7200; 60^2 / (7200 x 2)
    ((0.0, 60.0, 120.0), (5.0, 5.0, 5.0), 0.0, 1.0),  # flat: a line fits it exactly
    ((60.0, 60.0), (1.0, 3.0), 0.0, 0.0),  # no time between the samples: no slope to fit
])
def test_the_linear_fit_is_the_least_squares_slope_per_second_and_its_r_squared(
    stamps: tuple[float, ...], values: tuple[float, ...], slope: float, r_squared: float
) -> None:
    fitted_slope, fitted_r_squared = compute_linear_fit(Series(stamps, values))
    assert fitted_slope == pytest.approx(slope)
    assert fitted_r_squared == pytest.approx(r_squared)


@pytest.mark.parametrize(("values", "reversals"), [
    ([3.0], 0), ([1.0, 2.0, 3.0], 0), ([1.0, 2.0, 1.0, 2.0], 2), ([1.0, 1.0, 2.0, 2.0, 1.0], 1),  # flat steps skipped
])
def test_direction_reversals_count_turns_between_rising_and_falling(values: list[float], reversals: int) -> None:
    assert compute_direction_reversals(values) == reversals


@pytest.mark.parametrize(("span_seconds", "floor", "multiple"), [
    (300.0, 0.0, 3.0),  # 30 at t=300 against 10 at t=0
    (300.0, 20.0, 1.5),  # the earlier sample counts as at least the floor (the window's median)
    (600.0, 0.0, 1.0),  # no sample that far back: no rise
])
def test_the_rise_multiple_is_the_largest_ratio_to_the_sample_a_span_before(
    span_seconds: float, floor: float, multiple: float
) -> None:
    series = Series((0.0, 60.0, 120.0, 180.0, 240.0, 300.0), (10.0, 10.0, 10.0, 10.0, 10.0, 30.0))
    assert compute_rise_multiple(series, span_seconds=span_seconds, floor=floor) == pytest.approx(multiple)


def test_the_waiting_share_counts_samples_with_a_client_waiting() -> None:
    assert compute_waiting_fraction([0.0, 0.0, 1.0, 2.0]) == 0.5


@pytest.mark.parametrize(("live", "goal", "target"), [
    (70, 50, 60),  # one 10-point step toward the goal
    (95, 70, 85),  # a hand-set value above the bounds comes back a step at a time
    (60, 90, 70),  # the goal is clamped to the upper bound 80, the step to 10 points
    (70, 70, 70),
])
def test_a_target_moves_toward_its_goal_within_the_bounds_by_at_most_one_step(
    live: int, goal: int, target: int
) -> None:
    assert compute_target_step(live_percent=live, goal_percent=goal, lower=50, upper=80, max_step_points=10) == target


@pytest.mark.parametrize(("old", "factor", "upper", "granularity", "new"), [
    (1000, 1.5, 4000, 1, 1500),
    (1000, 2.0, 4000, 1, 1500),  # the step limit (50%) wins over the row's factor
    (1000, 0.75, 4000, 1, 750),
    (1000, 1.5, 1200, 1, 1200),  # the upper bound wins
    (5000, 1.5, 4000, 1, 5000),  # already above the bound: a raise never lowers it
    (1024 * MIB, 0.75, 8192 * MIB, MIB, 768 * MIB),
    (1000 * MIB + 7, 0.75, 8192 * MIB, MIB, 751 * MIB),  # 750 MiB + 5.25 B rounded up to whole MiB toward the old
])
def test_a_request_scales_by_its_factor_within_the_bounds_and_the_step(
    old: int, factor: float, upper: int, granularity: int, new: int
) -> None:
    assert compute_scaled_quantity(old, factor=factor, lower=50, upper=upper, max_step_percent=50,
                                   granularity=granularity) == new


@pytest.mark.parametrize(("lower", "step", "target"), [
    (50, 10, 60),  # the ideal 70 x 1000 / 1500 = 47 is 23 points away: one 10-point step
    (50, 30, 50),  # within the step, held at the lower bound
    (30, 30, 47),  # the ideal itself
])
def test_a_coupled_target_keeps_target_times_request_within_the_bounds_and_step(lower: int, step: int,
                                                                                 target: int) -> None:
    assert compute_coupled_cpu_target(live_target_percent=70, old_request_millicores=1000,
                                      new_request_millicores=1500, lower=lower, upper=80,
                                      max_step_points=step) == target


@pytest.mark.parametrize(("default", "reserve"), [
    (20, 10),  # a tier's own reserve (Normal 20/10)
    (26, 13),  # between tiers: Normal's ratio, 26 x 10/20
    (60, 45),  # beyond Peak: Peak's ratio, 60 x 30/40
    (6, 3),  # below Light: Light's ratio, 6 x 5/10
])
def test_a_pool_reserve_follows_its_tier_or_the_ratio_of_the_tier_at_or_below(default: int, reserve: int) -> None:
    assert compute_pool_reserve(default) == reserve


@pytest.mark.parametrize(("count", "fills"), [(3, True), (2, False), (6, True)])
def test_a_span_is_filled_by_samples_in_half_its_steps(count: int, fills: bool) -> None:
    # 300 s at a 60 s step holds 6 steps (both ends included): half of them is 3 samples.
    samples = Series(tuple(60.0 * i for i in range(count)), (1.0,) * count)
    assert fills_share_of_steps(samples, span_seconds=300, step_seconds=60, share=0.5) is fills
