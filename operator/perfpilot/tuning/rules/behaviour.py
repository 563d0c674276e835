"""The HPA's scale-up and scale-down rows."""

from __future__ import annotations

import math
from collections.abc import Iterator

from perfpilot.api.spec import Objective, ScaleDownSpeed, ScaleUpSpeed
from perfpilot.tuning import signals
from perfpilot.tuning.observations import Observations, Series, Unknown
from perfpilot.tuning.rules.changes import build_behaviour_change
from perfpilot.tuning.rules.context import RuleContext, RuleOutcome, find_unknown_names, format_ms
from perfpilot.tuning.tables import SCALE_DOWN_ROWS, SCALE_UP_ROWS, BehaviourRow


def is_slo_breached_while_scaling_up(
    latency: Series, replicas: Series, slo_seconds: float, *, after_seconds: float = -math.inf
) -> bool:
    latency_at = dict(zip(latency.timestamps_seconds, latency.values, strict=True))
    previous = replicas.values[0]
    for time, count in zip(replicas.timestamps_seconds[1:], replicas.values[1:], strict=True):
        if count > previous and time > after_seconds and latency_at.get(time, 0.0) > slo_seconds:
            return True
        previous = count
    return False


def compute_peak_window_rise_multiple(observations: Observations) -> float | None:
    """The least multiple the peak window's largest rise can have been, or None when unknown or none.

    The rise ended at or below the window's peak, so it started from at most the peak minus the rise
    (infinite when from nothing): a lower bound that needs no more than the two peaks already read. It is
    relative to the week's own peak, so a quiet night only counts when it jumps to the week's busiest level
    within minutes (as an idle service woken at once does); the Aggressive row it keeps costs nothing until
    the HPA wants more pods.
    """
    rise = observations.peak_request_rate_rise_per_second
    peak = observations.peak_request_rate_per_second
    if isinstance(rise, Unknown) or isinstance(peak, Unknown) or rise <= 0 or peak <= 0:
        return None
    return math.inf if rise >= peak else peak / (peak - rise)


def compute_scale_up_row(ctx: RuleContext) -> tuple[BehaviourRow, str] | tuple[None, tuple[str, ...]]:
    pinned = ctx.profile.hpa.scale_up
    if pinned is not ScaleUpSpeed.AUTO:
        return SCALE_UP_ROWS[pinned.value], f"scaleUp pinned to {pinned.value}"
    observations = ctx.observations
    needed = {"request_rate_per_second": observations.request_rate_per_second,
              "latency_p95_seconds": observations.latency_p95_seconds, "replicas": observations.replicas}
    blocked = find_unknown_names(needed)
    rate = observations.request_rate_per_second
    latency = observations.latency_p95_seconds
    replicas = observations.replicas
    if not isinstance(rate, Series) or not isinstance(latency, Series) or not isinstance(replicas, Series):
        return None, blocked
    thresholds = ctx.thresholds
    rise = signals.compute_rise_multiple(
        rate, span_seconds=thresholds.flash_crowd_span_seconds, floor=signals.compute_median(rate.values)
    )
    aggressive = SCALE_UP_ROWS["Aggressive"]
    hpa = observations.live.hpa
    staying = hpa is not None and build_behaviour_change(ctx, hpa, scale_up=True, row=aggressive, reason="") is None
    multiple = thresholds.flash_crowd_leave_multiple if staying else thresholds.flash_crowd_multiple
    if rise >= multiple:
        return aggressive, (
            f"flash crowd (request rate x{rise:.1f} within {thresholds.flash_crowd_span_seconds:.0f}s "
            f">= x{multiple:g}{' to stay Aggressive' if staying else ''})")
    if is_slo_breached_while_scaling_up(latency, replicas, ctx.slo_seconds):
        return SCALE_UP_ROWS["Aggressive"], f"SLO {format_ms(ctx.slo_seconds)} breached while scaling up"
    week = compute_peak_window_rise_multiple(observations)
    if week is not None and week >= multiple:
        # A quiet half hour does not end the week's flash crowds: the row stays for the next one.
        hours = observations.peak_window_seconds / 3600
        return aggressive, (
            f"flash crowd in the last {hours:g}h (a rise of {observations.peak_request_rate_rise_per_second:.1f}/s "
            f"within {thresholds.flash_crowd_span_seconds:.0f}s to at most the peak "
            f"{observations.peak_request_rate_per_second:.1f}/s: "
            f"{'from nothing' if math.isinf(week) else f'at least x{week:.1f}'} >= x{multiple:g})")
    if ctx.profile.objective is Objective.COST:
        load = ctx.detail.load
        if load.label == "Unknown":
            return None, load.blocked_by
        if load.label == "Steady":
            return SCALE_UP_ROWS["Conservative"], f"objective Cost with steady load ({load.evidence})"
    return SCALE_UP_ROWS["Moderate"], f"no flash crowd (x{rise:.1f} < x{multiple:g}), no SLO breach while scaling up"


def compute_scale_down_row(ctx: RuleContext) -> tuple[BehaviourRow, str] | tuple[None, tuple[str, ...]]:
    pinned = ctx.profile.hpa.scale_down
    if pinned is not ScaleDownSpeed.AUTO:
        return SCALE_DOWN_ROWS[pinned.value], f"scaleDown pinned to {pinned.value}"
    replicas = ctx.observations.replicas
    load = ctx.detail.load
    if not isinstance(replicas, Series) or load.label == "Unknown":
        return None, find_unknown_names({"replicas": replicas}) + load.blocked_by
    reversals = signals.compute_direction_reversals(replicas.values)
    slow = SCALE_DOWN_ROWS["Slow"]
    hpa = ctx.observations.live.hpa
    staying = hpa is not None and build_behaviour_change(ctx, hpa, scale_up=False, row=slow, reason="") is None
    least = ctx.thresholds.flapping_leave_reversals + 1 if staying else ctx.thresholds.flapping_reversals
    if reversals >= least:
        return slow, (f"replica count flapping ({reversals} reversals >= {least}"
                      f"{' to stay Slow' if staying else ''})")
    if load.label == "Bursty":
        return SCALE_DOWN_ROWS["Slow"], f"bursty load ({load.evidence})"
    if ctx.profile.objective is Objective.COST:
        return SCALE_DOWN_ROWS["Fast"], f"objective Cost, steady load, {reversals} reversals"
    return SCALE_DOWN_ROWS["Moderate"], f"steady load, {reversals} replica reversals"


def describe_row(row: BehaviourRow, *, scale_up: bool) -> str:
    sign = "+" if scale_up else "-"
    return (f"window {row.stabilization_window_seconds}s, {sign}{row.percent}% per {row.period_seconds}s")


def decide_behaviour(ctx: RuleContext) -> Iterator[RuleOutcome]:
    """Scale-up row first (it protects the SLO), then scale-down."""
    hpa = ctx.tuned_hpa
    if hpa is None:
        return
    for scale_up, picked in ((True, compute_scale_up_row(ctx)), (False, compute_scale_down_row(ctx))):
        name = "scale-up behaviour" if scale_up else "scale-down behaviour"
        row, why = picked
        if row is None:
            assert isinstance(why, tuple)
            yield RuleOutcome(name, note="signals unknown", blocked_by=why)
            continue
        direction = "scale-up" if scale_up else "scale-down"
        reason = f"{why}: {direction} row '{row.name}' ({describe_row(row, scale_up=scale_up)})"
        change = build_behaviour_change(ctx, hpa, scale_up=scale_up, row=row, reason=reason)
        if change is None:
            yield RuleOutcome(name, note=f"{reason}: already in place")
        else:
            yield RuleOutcome(name, change=change)
