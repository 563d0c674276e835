"""What Prometheus 2.42 computes from written samples, for the assertions (not used by perfpilot itself).

``rate_at`` follows ``extrapolatedRate`` in promql/functions.go (range closed at both ends in 2.x, linear
extrapolation toward the range's edges unless a gap is over 1.1 average intervals, never below zero for
counters); ``instant_at`` is an instant selector with the 5-minute lookback, closed at both ends in 2.x too
(``vectorSelectorSingle`` drops only a sample older than the evaluation time minus the lookback: 3.0 made it
left-open).
"""

from __future__ import annotations

from collections.abc import Sequence

LOOKBACK_SECONDS = 300


def rate_at(points: Sequence[tuple[int, float]], *, at_seconds: int, range_seconds: int) -> float | None:
    start = at_seconds - range_seconds
    inside = [(t, v) for t, v in points if start <= t <= at_seconds]
    if len(inside) < 2:
        return None
    result = inside[-1][1] - inside[0][1]
    last = 0.0
    for _, value in inside:
        if value < last:
            result += last
        last = value
    to_start = float(inside[0][0] - start)
    to_end = float(at_seconds - inside[-1][0])
    sampled = float(inside[-1][0] - inside[0][0])
    average = sampled / (len(inside) - 1)
    if result > 0 and inside[0][1] >= 0:
        to_zero = sampled * (inside[0][1] / result)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return result * (interval / sampled) / range_seconds


def instant_at(points: Sequence[tuple[int, float]], *, at_seconds: int) -> float | None:
    candidates = [(t, v) for t, v in points if at_seconds - LOOKBACK_SECONDS <= t <= at_seconds]
    return candidates[-1][1] if candidates else None
