"""Raw samples -> ``Series | Unknown``, and PromQL's ``histogram_quantile``, as pure functions.

Both the Prometheus reader and the simulator turn samples into the engine's signals here, so the two
agree on what "unknown" means. The rules, in the order they are checked:

1. **empty** — no sample inside ``[at - window, at]``: ``Unknown("no samples in window")``.
2. **stale** — the newest sample is more than two steps older than ``at``: the series stopped (a pod
   gone, a scrape failing), and its last value says nothing about now.
3. **NaN / Inf at the end** — the newest sample is not a finite number (``histogram_quantile`` over zero
   traffic, a ratio 0/0): the current value is not known.
4. **too few** — after dropping NaN/Inf samples inside the window, fewer than
   ``MIN_SAMPLE_SHARE`` of the points a full window holds (``window / step + 1``) remain.

A signal that passes keeps only its finite samples, oldest first; a ``Series`` never carries a zero that
stands for "no data" (KEDA's ``ignoreNullValues`` trap).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from perfpilot.tuning.observations import Series, Unknown

# Half of a window's points must be real numbers: a 30 m window at a 60 s step (31 points) needs 16.
# Less than half and a mean or a trend over "the window" describes a shorter, unknown period.
MIN_SAMPLE_SHARE = 0.5
# A series whose newest sample is older than this many steps before the evaluation time is stale.
STALE_AFTER_STEPS = 2.0

RawValue = float | str  # Prometheus' HTTP API sends values as strings ("1.5", "NaN", "+Inf")
RawSample = tuple[float, RawValue]


def parse_value(raw: RawValue) -> float:
    """A sample value as Prometheus writes it (``"NaN"``, ``"+Inf"``, ``"-Inf"``, ``"0.25"``) as a float."""
    if isinstance(raw, str):
        return float(raw)  # Python's float() already reads "NaN", "+Inf" and "-Inf"
    return float(raw)


def expected_points(*, window_seconds: float, step_seconds: float) -> int:
    """How many points a range query over a full window returns: both ends are evaluated."""
    if step_seconds <= 0:
        raise ValueError(f"step must be positive (got {step_seconds})")
    return math.floor(window_seconds / step_seconds + 1e-9) + 1


def minimum_points(*, window_seconds: float, step_seconds: float, min_share: float = MIN_SAMPLE_SHARE) -> int:
    """Fewest finite samples a signal needs to be known (at least one)."""
    expected = expected_points(window_seconds=window_seconds, step_seconds=step_seconds)
    return max(1, math.ceil(min_share * expected - 1e-9))


def _describe_non_finite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def to_signal(
    samples: Iterable[RawSample],
    *,
    at_seconds: float,
    window_seconds: float,
    step_seconds: float,
    min_share: float = MIN_SAMPLE_SHARE,
) -> Series | Unknown:
    """Turn ``(unix seconds, value)`` samples into a ``Series`` over ``[at - window, at]`` or an ``Unknown``.

    Samples may come in any order and may lie outside the window (they are ignored); values may be
    Prometheus' strings. See the module docstring for the rules and their order.
    """
    start_seconds = at_seconds - window_seconds
    in_window = sorted(
        (float(stamp), parse_value(value))
        for stamp, value in samples
        if start_seconds - 1e-9 <= float(stamp) <= at_seconds + 1e-9
    )
    if not in_window:
        return Unknown("no samples in window")

    newest_seconds, newest_value = in_window[-1]
    age_seconds = at_seconds - newest_seconds
    if age_seconds > STALE_AFTER_STEPS * step_seconds + 1e-9:
        return Unknown(
            f"stale: last sample {age_seconds:.0f}s old (more than {STALE_AFTER_STEPS:g} steps of {step_seconds:g}s)"
        )

    finite = [(stamp, value) for stamp, value in in_window if math.isfinite(value)]
    dropped = len(in_window) - len(finite)
    if not math.isfinite(newest_value):
        return Unknown(
            f"{_describe_non_finite(newest_value)}: latest sample is not a number "
            f"({dropped} of {len(in_window)} samples in window not finite)"
        )

    needed = minimum_points(window_seconds=window_seconds, step_seconds=step_seconds, min_share=min_share)
    if len(finite) < needed:
        expected = expected_points(window_seconds=window_seconds, step_seconds=step_seconds)
        not_finite = f", {dropped} NaN/Inf dropped" if dropped else ""
        return Unknown(f"too few samples: {len(finite)} of {expected} expected, need {needed}{not_finite}")

    return Series(tuple(stamp for stamp, _ in finite), tuple(value for _, value in finite))


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """PromQL's ``histogram_quantile`` for one classic histogram: ``buckets`` are ``(le, cumulative count)``.

    Follows Prometheus' ``bucketQuantile`` (promql/quantile.go): buckets sorted by upper bound, equal bounds
    merged, counts forced monotonic, the answer linearly interpolated inside the bucket that holds the rank;
    the lowest bucket starts at 0 when its upper bound is positive; a rank in the +Inf bucket returns the
    second-highest bound. NaN (not 0) when there is no +Inf bucket, fewer than two buckets or no
    observations — callers turn NaN into ``Unknown``.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted((float(bound), float(count)) for bound, count in buckets)
    if not ordered or not math.isinf(ordered[-1][0]) or ordered[-1][0] < 0:
        return math.nan

    # Merge equal upper bounds (several series of one histogram that differ only in other labels).
    merged: list[list[float]] = []
    for bound, count in ordered:
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    # Counts that go down across bounds come from scrapes of different moments; PromQL flattens them.
    highest = -math.inf
    for bucket in merged:
        if bucket[1] > highest:
            highest = bucket[1]
        elif bucket[1] < highest:
            bucket[1] = highest
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan

    rank = q * observations
    # sort.Search over all but the +Inf bucket: the first bucket holding the rank, else the +Inf one.
    index = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if index == len(merged) - 1:
        return merged[-2][0]
    if index == 0 and merged[0][0] <= 0:
        return merged[0][0]
    bucket_start = 0.0
    bucket_end, count = merged[index]
    if index > 0:
        bucket_start = merged[index - 1][0]
        count -= merged[index - 1][1]
        rank -= merged[index - 1][1]
    if count == 0:  # only when q == 0 and the bucket is empty: Go's 0/0
        return math.nan
    return bucket_start + (bucket_end - bucket_start) * (rank / count)
