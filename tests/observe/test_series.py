"""Samples become a Series only when they say something about now; histogram_quantile matches PromQL's."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfpilot.observe.series import (
    MIN_SAMPLE_SHARE,
    expected_points,
    histogram_quantile,
    minimum_points,
    to_signal,
)
from perfpilot.tuning.observations import Series, Unknown

AT = 1_700_000_000.0
STEP = 60.0
WINDOW = 1800.0


def full_window(value: float | str = 1.0) -> list[tuple[float, float | str]]:
    return [(AT - WINDOW + STEP * i, value) for i in range(31)]


def test_a_full_window_of_finite_samples_is_a_series_oldest_first() -> None:
    samples = list(reversed([(t, float(i)) for i, (t, _) in enumerate(full_window())]))
    signal = to_signal(samples, at_seconds=AT, window_seconds=WINDOW, step_seconds=STEP)
    assert isinstance(signal, Series)
    assert signal.timestamps_seconds[0] == AT - WINDOW
    assert signal.values == tuple(float(i) for i in range(31))


def test_prometheus_string_values_are_parsed() -> None:
    signal = to_signal(full_window("0.25"), at_seconds=AT, window_seconds=WINDOW, step_seconds=STEP)
    assert isinstance(signal, Series)
    assert signal.latest == 0.25


def test_no_samples_is_unknown_not_zero() -> None:
    signal = to_signal([], at_seconds=AT, window_seconds=WINDOW, step_seconds=STEP)
    assert signal == Unknown("no samples in window")


def test_samples_outside_the_window_do_not_count() -> None:
    before = [(AT - WINDOW - 60.0 * i, 1.0) for i in range(1, 10)]
    after = [(AT + 60.0, 1.0)]
    signal = to_signal(before + after, at_seconds=AT, window_seconds=WINDOW, step_seconds=STEP)
    assert signal == Unknown("no samples in window")


def test_a_series_that_stopped_more_than_two_steps_ago_is_stale() -> None:
    samples = [(t, 1.0) for t, _ in full_window() if t <= AT - 3 * STEP]
    signal = to_signal(samples, at_seconds=AT, window_seconds=WINDOW, step_seconds=STEP)
    assert isinstance(signal, Unknown)
    assert signal.reason.startswith("stale: last sample 180s old")


def test_a_series_two_steps_behind_is_still_fresh() -> None:
    samples = [(t, 1.0) for t, _ in full_window() if t <= AT - 2 * STEP]
    assert isinstance(to_signal(samples, at_seconds=AT, window_seconds=WINDOW, step_seconds=STEP), Series)


@pytest.mark.parametrize(("raw", "name"), [("NaN", "NaN"), ("+Inf", "+Inf"), ("-Inf", "-Inf")])
def test_a_non_finite_latest_sample_is_unknown(raw: str, name: str) -> None:
    samples = [*full_window(1.0)[:-1], (AT, raw)]
    signal = to_signal(samples, at_seconds=AT, window_seconds=WINDOW, step_seconds=STEP)
    assert isinstance(signal, Unknown)
    assert signal.reason.startswith(f"{name}: latest sample is not a number (1 of 31")


def test_nan_samples_inside_the_window_are_dropped_not_zeroed() -> None:
    samples = [(t, "NaN" if i % 3 == 0 and i < 30 else 2.0) for i, (t, _) in enumerate(full_window())]
    signal = to_signal(samples, at_seconds=AT, window_seconds=WINDOW, step_seconds=STEP)
    assert isinstance(signal, Series)
    assert len(signal.values) == 21
    assert signal.minimum == 2.0


def test_fewer_than_the_minimum_share_is_too_few() -> None:
    needed = minimum_points(window_seconds=WINDOW, step_seconds=STEP)
    assert needed == math.ceil(MIN_SAMPLE_SHARE * 31) == 16
    samples = full_window()[-(needed - 1):]
    signal = to_signal(samples, at_seconds=AT, window_seconds=WINDOW, step_seconds=STEP)
    assert signal == Unknown("too few samples: 15 of 31 expected, need 16")
    assert isinstance(
        to_signal(full_window()[-needed:], at_seconds=AT, window_seconds=WINDOW, step_seconds=STEP), Series
    )


def test_too_few_counts_only_finite_samples() -> None:
    samples = [(t, "NaN" if i < 20 else 1.0) for i, (t, _) in enumerate(full_window())]
    signal = to_signal(samples, at_seconds=AT, window_seconds=WINDOW, step_seconds=STEP)
    assert signal == Unknown("too few samples: 11 of 31 expected, need 16, 20 NaN/Inf dropped")


def test_expected_points_count_both_ends() -> None:
    assert expected_points(window_seconds=1800, step_seconds=60) == 31
    assert expected_points(window_seconds=60, step_seconds=60) == 2


# --- histogram_quantile: the cases below are PromQL's own (promql/testdata/histograms.test) ---

BUCKETS = [(0.1, 50.0), (0.2, 70.0), (0.5, 90.0), (1.0, 100.0), (math.inf, 100.0)]


def test_quantile_interpolates_linearly_inside_the_bucket() -> None:
    # rank 95 lies in (0.5, 1.0]: 0.5 + 0.5 * (95 - 90) / (100 - 90)
    assert histogram_quantile(0.95, BUCKETS) == pytest.approx(0.75)
    # rank 60 lies in (0.1, 0.2]: 0.1 + 0.1 * (60 - 50) / 20
    assert histogram_quantile(0.6, BUCKETS) == pytest.approx(0.15)


def test_the_lowest_bucket_starts_at_zero() -> None:
    assert histogram_quantile(0.25, BUCKETS) == pytest.approx(0.05)


def test_a_rank_in_the_inf_bucket_returns_the_highest_finite_bound() -> None:
    buckets = [(0.1, 10.0), (0.5, 20.0), (math.inf, 100.0)]
    assert histogram_quantile(0.95, buckets) == 0.5


def test_a_non_positive_lowest_bound_is_returned_as_is() -> None:
    assert histogram_quantile(0.1, [(-1.0, 10.0), (0.0, 20.0), (math.inf, 30.0)]) == -1.0


def test_no_inf_bucket_or_no_observations_is_nan() -> None:
    assert math.isnan(histogram_quantile(0.5, [(0.1, 1.0), (0.2, 2.0)]))
    assert math.isnan(histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]))
    assert math.isnan(histogram_quantile(0.5, [(math.inf, 10.0)]))
    assert math.isnan(histogram_quantile(math.nan, BUCKETS))


def test_out_of_range_quantiles_are_infinite() -> None:
    assert histogram_quantile(-0.1, BUCKETS) == -math.inf
    assert histogram_quantile(1.1, BUCKETS) == math.inf


def test_non_monotonic_counts_are_flattened_and_equal_bounds_merged() -> None:
    # 0.5 bucket below the 0.2 bucket is raised to 70, as ensureMonotonic does.
    assert histogram_quantile(0.5, [(0.1, 20.0), (0.2, 70.0), (0.5, 60.0), (math.inf, 100.0)]) == pytest.approx(
        0.1 + 0.1 * (50 - 20) / 50
    )
    split = [(0.1, 25.0), (0.1, 25.0), (0.2, 35.0), (0.2, 35.0), (0.5, 45.0), (0.5, 45.0)]
    split += [(1.0, 50.0), (1.0, 50.0), (math.inf, 50.0), (math.inf, 50.0)]
    assert histogram_quantile(0.95, split) == pytest.approx(histogram_quantile(0.95, BUCKETS))


@given(
    st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), min_size=1, max_size=12),
    st.floats(min_value=0.01, max_value=1.0),
)
def test_the_quantile_stays_within_the_finite_bounds(increments: list[float], q: float) -> None:
    counts = [sum(increments[: i + 1]) for i in range(len(increments))]
    bounds = [0.05 * (i + 1) for i in range(len(increments))]
    buckets = [*zip(bounds, counts, strict=True), (math.inf, counts[-1])]
    result = histogram_quantile(q, buckets)
    if counts[-1] == 0:
        assert math.isnan(result)
    else:
        assert 0.0 <= result <= bounds[-1] + 1e-12
