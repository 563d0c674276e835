"""Whether the service is short of capacity now: p95 over the SLO, the HPA saturated, pool clients waiting."""

from __future__ import annotations

from perfpilot.tuning import signals
from perfpilot.tuning.observations import Series, Unknown
from perfpilot.tuning.rules.context import RuleContext, format_ms


def compute_shortage(ctx: RuleContext) -> str | None:
    """Why the service is short of capacity now (SLO breached, or pool clients waiting), or None."""
    # Only samples that cover the span count: one slow scrape after a gap is not a shortage.
    span = ctx.thresholds.recent_span_seconds
    latency = ctx.recent(ctx.observations.latency_p95_seconds, span)
    if isinstance(latency, Series) and ctx.covers(latency, span) and latency.mean > ctx.slo_seconds:
        return f"p95 {format_ms(latency.mean)} > SLO {format_ms(ctx.slo_seconds)}"
    saturated = compute_saturation(ctx)
    if saturated is not None:
        return saturated
    waiting_span = ctx.thresholds.pool_sustained_span_seconds
    waiting = ctx.recent(ctx.observations.pool_client_waiting, waiting_span)
    if ctx.tuned_pool is not None and isinstance(waiting, Series) and ctx.fills(waiting, waiting_span):
        fraction = signals.compute_waiting_fraction(waiting.values)
        if fraction >= ctx.thresholds.pool_sustained_fraction:
            return f"pool clients waiting in {fraction:.0%} of the last {waiting_span:.0f}s"
    return None


def compute_saturation(ctx: RuleContext) -> str | None:
    """Why the HPA is saturated (at maxReplicas, with the recent CPU utilisation at or above its target while
    the SLO is breached, or above it by more than the HPA's tolerance while the SLO is met), or None.

    The HPA would add pods but may not: the pods are too small for the load or maxReplicas is too low. With the
    SLO met, within the tolerance the HPA itself would not add a pod, so there is nothing it is kept from
    doing; with the SLO breached, CPU at the target at maxReplicas is already short.
    """
    hpa = ctx.tuned_hpa
    if hpa is None or hpa.cpu_target_percent is None or hpa.current_replicas < hpa.max_replicas:
        return None
    span = ctx.thresholds.recent_span_seconds
    cpu = ctx.recent(signals.compute_cpu_utilisation_percent(ctx.observations), span)
    if isinstance(cpu, Unknown):
        return None
    latency = ctx.recent(ctx.observations.latency_p95_seconds, span)
    target = hpa.cpu_target_percent
    if isinstance(latency, Series) and latency.mean > ctx.slo_seconds:
        if cpu.mean < target:
            return None
        return (f"HPA saturated at maxReplicas {hpa.max_replicas} with CPU {cpu.mean:.0f}% >= target {target}% "
                f"and p95 {format_ms(latency.mean)} > SLO {format_ms(ctx.slo_seconds)}")
    wants_more = target * (1 + ctx.thresholds.hpa_tolerance)
    if cpu.mean <= wants_more:
        return None
    return (f"HPA saturated at maxReplicas {hpa.max_replicas} with CPU {cpu.mean:.0f}% > {wants_more:.0f}% "
            f"(target {target}% + the HPA's {ctx.thresholds.hpa_tolerance:.0%} tolerance)")
