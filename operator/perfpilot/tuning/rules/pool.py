"""pgBouncer pool rules: grow a tier on sustained waiting clients or > 90% use, shrink one when idle; and the
growth an SLO breach calls for while clients wait (``compute_pool_growth_for_breach``, for the emergency and
latency feedback)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from perfpilot.api.status import PoolSize
from perfpilot.tuning import guardrails, signals
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.observations import PoolLive, Series, Unknown
from perfpilot.tuning.rules.changes import build_pool_change
from perfpilot.tuning.rules.context import (
    POOL_HISTORY,
    RuleContext,
    RuleOutcome,
    check_history_for_a_cut,
    find_unknown_names,
    format_hours,
    format_ms,
)
from perfpilot.tuning.tables import BEYOND_PEAK, POOL_TIERS


def compute_pool_grow(ctx: RuleContext, pool: PoolLive) -> tuple[PoolSize, str] | str:
    """One tier up (or one maxStepPercent step beyond Peak), within size.max, the step and the budget."""
    spec = ctx.profile.pool
    live_default = pool.default_pool_size
    # At least one connection a step, as maxReplicas: 20% of a pool of 3 rounds down to no growth at all.
    step_limit = max(live_default + 1, math.floor(live_default * (1 + ctx.profile.guardrails.max_step_percent / 100)))
    tier = next((t for t in POOL_TIERS if t.default_pool_size > live_default), None)
    if tier is not None:
        goal, row = tier.default_pool_size, f"{tier.name} {tier.default_pool_size}/{tier.reserve_pool_size}"
    else:
        goal, row = step_limit, f"beyond Peak (+{ctx.profile.guardrails.max_step_percent}%)"
    # Goal -> bounds -> step limit (the step limit wins): a live pool below size.min climbs toward it one
    # step at a time instead of jumping there.
    bounded = guardrails.clamp(goal, lower=spec.size.min, upper=spec.size.max)
    new_default = min(bounded, step_limit)
    if new_default <= live_default:
        return f"pool {live_default} already at size.max {spec.size.max} or the step limit"
    limits = []
    if bounded > goal:
        # The row that decides is the bound, not the tier: say so.
        row = f"size.min {spec.size.min} (live {live_default} below it; next tier {row})"
    elif bounded < goal:
        limits.append(f"size.max {spec.size.max}")
    if new_default < bounded:
        limits.append(f"step limit +{ctx.profile.guardrails.max_step_percent}% = {new_default}")
    def reserve_for(default_pool_size: int) -> int:
        # A growth never lowers the reserve (one set by hand above the tier's): fewer server connections in
        # all would be no growth.
        return max(pool.reserve_pool_size, guardrails.compute_pool_reserve(default_pool_size))

    while new_default > live_default and not guardrails.fits_server_budget(
        default_pool_size=new_default, reserve_pool_size=reserve_for(new_default),
        pooler_replicas=pool.pooler_replicas, max_server_connections=spec.max_server_connections,
    ):
        new_default -= 1
        if "maxServerConnections" not in limits:
            limits.append("maxServerConnections")
    if new_default <= live_default:
        return (f"pool {live_default}/{pool.reserve_pool_size} cannot grow within maxServerConnections "
                f"{spec.max_server_connections} x {pool.pooler_replicas} pooler(s)")
    size = PoolSize(default_pool_size=new_default, reserve_pool_size=reserve_for(new_default))
    note = f" (limited by {', '.join(limits)})" if limits else ""
    return size, row + note


@dataclass(frozen=True)
class PoolGrowth:
    """The pool's next tier, and the evidence that the SLO breach is (partly) waiting for it."""

    pool: PoolLive
    size: PoolSize
    row: str
    evidence: str


def compute_pool_growth_for_breach(ctx: RuleContext, span_seconds: float) -> PoolGrowth | None:
    """The pool growth that answers an SLO breach, or None: clients waited for a server connection in the last
    ``span_seconds``, perfpilot tunes the pool, its signals are known and it can still grow. Then more pods
    would only queue more requests for the same connections; otherwise the CPU target stays the lever."""
    pool = ctx.tuned_pool
    waiting = ctx.recent(ctx.observations.pool_client_waiting, span_seconds)
    if pool is None or not isinstance(waiting, Series) or waiting.maximum <= 0:
        return None
    if isinstance(ctx.observations.pool_server_active, Unknown):
        return None
    grown = compute_pool_grow(ctx, pool)
    if isinstance(grown, str):
        return None
    size, row = grown
    return PoolGrowth(pool, size, row, _describe_waiting(waiting, span_seconds))


def _describe_waiting(waiting: Series, span_seconds: float) -> str:
    fraction = signals.compute_waiting_fraction(waiting.values)
    return f"pool clients waiting in {fraction:.0%} of the last {span_seconds:.0f}s"


def build_pool_growth_change(ctx: RuleContext, growth: PoolGrowth, *, why: str, emergency: bool) -> ProposedChange:
    pool, size = growth.pool, growth.size
    return build_pool_change(
        ctx, pool, size, emergency=emergency, table_row=growth.row,
        reason=f"{why}: pool row {growth.row}: {pool.default_pool_size}/{pool.reserve_pool_size} -> "
               f"{size.default_pool_size}/{size.reserve_pool_size}",
    )


def decide_pool_waiting(ctx: RuleContext) -> Iterator[RuleOutcome]:
    """Clients waiting for a server connection (or > 90% use) in a sustained way: one tier up."""
    name = "pool waiting"
    pool = ctx.tuned_pool
    if pool is None:
        return
    thresholds = ctx.thresholds
    span = thresholds.pool_sustained_span_seconds
    waiting = ctx.recent(ctx.observations.pool_client_waiting, span)
    utilisation = ctx.recent(signals.compute_pool_utilisation_percent(ctx.observations), span)
    blocked = find_unknown_names({"pool_client_waiting": ctx.observations.pool_client_waiting,
                                  "pool_server_active": ctx.observations.pool_server_active})
    if blocked or isinstance(waiting, Unknown) or isinstance(utilisation, Unknown):
        # Known over the window, a signal may still have no sample in the recent span: name that one.
        recent_gaps = (*(("pool_client_waiting",) if isinstance(waiting, Unknown) else ()),
                       *(("pool_server_active",) if isinstance(utilisation, Unknown) else ()))
        yield RuleOutcome(name, note="pool signals unknown", blocked_by=blocked or recent_gaps)
        return
    # "Sustained" is a share of the span's samples: after a scrape gap, one or two samples are not the span.
    waiting_filled, utilisation_filled = ctx.fills(waiting, span), ctx.fills(utilisation, span)
    waiting_fraction = signals.compute_waiting_fraction(waiting.values)
    busy_fraction = signals.compute_fraction(
        utilisation.values, lambda v: v > thresholds.pool_grow_utilisation_percent
    )
    emergency_span = thresholds.emergency_pool_waiting_span_seconds
    emergency_waiting = ctx.recent(ctx.observations.pool_client_waiting, emergency_span)
    emergency = (
        isinstance(emergency_waiting, Series) and ctx.covers(emergency_waiting, emergency_span)
        and emergency_waiting.minimum > 0
    )
    if emergency:
        why = f"Pool emergency: clients waiting in every sample of the last {emergency_span:.0f}s"
    elif waiting_filled and waiting_fraction >= thresholds.pool_sustained_fraction:
        why = (f"Pool clients waiting in {waiting_fraction:.0%} of the last {span:.0f}s "
               f"(>= {thresholds.pool_sustained_fraction:.0%}, peak {waiting.maximum:.0f})")
    elif utilisation_filled and busy_fraction >= thresholds.pool_sustained_fraction:
        why = (f"Pool utilisation above {thresholds.pool_grow_utilisation_percent:.0f}% (critical) in "
               f"{busy_fraction:.0%} of the last {span:.0f}s (peak {utilisation.maximum:.0f}%)")
    elif (outgrown := compute_pool_outgrown(ctx, pool)) is not None:
        why = outgrown
    elif (breached := compute_breach_with_pool_waiting(ctx)) is not None:
        why = breached
    else:
        gap = "" if waiting_filled and utilisation_filled else f"; the samples do not fill the last {span:.0f}s"
        yield RuleOutcome(name, note=f"no sustained pool waiting (waiting in {waiting_fraction:.0%}, "
                                     f"> {thresholds.pool_grow_utilisation_percent:.0f}% in {busy_fraction:.0%}{gap})")
        return
    grown = compute_pool_grow(ctx, pool)
    if isinstance(grown, str):
        yield RuleOutcome(name, note=f"{why}; {grown}")
        return
    size, row = grown
    growth = PoolGrowth(pool, size, row, why)
    yield RuleOutcome(name, change=build_pool_growth_change(ctx, growth, why=why, emergency=emergency))


def compute_breach_with_pool_waiting(ctx: RuleContext) -> str | None:
    """Why the SLO breach of the last recent_span_seconds is (partly) the pool's, or None: p95 over the SLO
    while clients waited for a server connection, however briefly (each wait delays every request behind it)."""
    span = ctx.thresholds.recent_span_seconds
    latency = ctx.recent(ctx.observations.latency_p95_seconds, span)
    waiting = ctx.recent(ctx.observations.pool_client_waiting, span)
    if not isinstance(latency, Series) or not isinstance(waiting, Series):
        return None
    if latency.mean <= ctx.slo_seconds or waiting.maximum <= 0:
        return None
    return f"p95 {format_ms(latency.mean)} > SLO {format_ms(ctx.slo_seconds)} with {_describe_waiting(waiting, span)}"


def compute_pool_outgrown(ctx: RuleContext, pool: PoolLive) -> str | None:
    """Why the pool is too small for the window's bursts, or None: clients waited in the window and the
    peak demand per pooler (server active + waiting) went above the pool size. Short bursts never make
    waiting "sustained", yet each one queues every transaction behind the pool; the pool-load table picks
    the tier from this peak demand."""
    demand = signals.compute_pool_demand_connections(ctx.observations)
    waiting = ctx.observations.pool_client_waiting
    if not isinstance(demand, Series) or not isinstance(waiting, Series) or waiting.maximum <= 0:
        return None
    per_pooler = demand.maximum / max(1, pool.pooler_replicas)
    if per_pooler <= pool.default_pool_size:
        return None
    waited = signals.compute_waiting_fraction(waiting.values)
    return (f"Pool demand peak {per_pooler:.0f} connections per pooler > pool {pool.default_pool_size} in the "
            f"window, clients waiting in {waited:.0%} of it (bursts too short to be sustained)")


def decide_pool_shrink(ctx: RuleContext) -> Iterator[RuleOutcome]:
    """One tier down when the pool stayed under 50% all window and the smaller pool stays under 80%."""
    name = "pool shrinking"
    pool = ctx.tuned_pool
    if pool is None:
        return
    observations = ctx.observations
    utilisation = signals.compute_pool_utilisation_percent(observations)
    demand = signals.compute_pool_demand_connections(observations)
    waiting = observations.pool_client_waiting
    if isinstance(utilisation, Unknown) or isinstance(demand, Unknown) or isinstance(waiting, Unknown):
        yield RuleOutcome(name, note="pool signals unknown", blocked_by=find_unknown_names(
            {"pool_server_active": observations.pool_server_active, "pool_client_waiting": waiting}))
        return
    thresholds = ctx.thresholds
    if utilisation.maximum >= thresholds.pool_shrink_utilisation_percent or waiting.maximum > 0:
        return
    under = f"pool under {thresholds.pool_shrink_utilisation_percent:g}%"
    if not ctx.covers(utilisation, observations.window_seconds):
        yield RuleOutcome(name, note=f"{under}, but the window is not yet covered")
        return
    held = check_history_for_a_cut(ctx, rule=name, finding=under, of=POOL_HISTORY)
    if held is not None:
        yield held
        return
    live_default = pool.default_pool_size
    lower_tier = next((t for t in reversed(POOL_TIERS) if t.default_pool_size < live_default), None)
    floor_by_step = math.ceil(live_default * (1 - ctx.profile.guardrails.max_step_percent / 100))
    if live_default > POOL_TIERS[-1].default_pool_size:
        goal, row = max(POOL_TIERS[-1].default_pool_size, floor_by_step), f"beyond Peak ({BEYOND_PEAK.note})"
    elif lower_tier is not None:
        goal, row = lower_tier.default_pool_size, f"{lower_tier.name} {lower_tier.default_pool_size}/" \
                                                  f"{lower_tier.reserve_pool_size}"
    else:
        return
    new_default = max(goal, floor_by_step, ctx.profile.pool.size.min)
    if new_default >= live_default:
        yield RuleOutcome(name, note=f"pool {live_default} already at size.min or the step limit")
        return
    long_peak = observations.peak_pool_demand_connections
    span = format_hours(observations.peak_window_seconds)
    if isinstance(long_peak, Unknown):
        yield RuleOutcome(name, note=f"{under}, but the demand peak over {span} is unknown "
                                     f"({long_peak.reason}): no shrink",
                          blocked_by=("peak_pool_demand_connections",))
        return
    per_pooler_peak = max(demand.maximum, long_peak) / max(1, pool.pooler_replicas)
    projected = 100 * per_pooler_peak / new_default
    if projected >= thresholds.pool_warning_utilisation_percent:
        yield RuleOutcome(name, note=f"{under} but the {span} demand peak would be {projected:.0f}% of "
                                     f"{new_default} (>= {thresholds.pool_warning_utilisation_percent:.0f}% warning)")
        return
    # A shrink never raises the reserve (a tier's reserve ratio can be higher than the live one's), so the
    # server connections never grow and a pool within maxServerConnections stays within it.
    reserve = min(guardrails.compute_pool_reserve(new_default), pool.reserve_pool_size)
    size = PoolSize(default_pool_size=new_default, reserve_pool_size=reserve)
    yield RuleOutcome(name, change=build_pool_change(
        ctx, pool, size, table_row=row,
        reason=(f"Pool utilisation peak {utilisation.maximum:.0f}% < {thresholds.pool_shrink_utilisation_percent:.0f}% "
                f"(target) all window, no waiting: pool row {row}: {live_default}/{pool.reserve_pool_size} -> "
                f"{size.default_pool_size}/{size.reserve_pool_size} ({span} demand peak would be {projected:.0f}%)"),
    ))
