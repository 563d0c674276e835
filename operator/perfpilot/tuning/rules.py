"""One function per rule, in DESIGN's order of precedence (``RULES`` at the end).

Each rule names the signals it needs and yields candidate changes, most wanted first; a rule whose
signals are unknown yields an outcome with ``blocked_by`` instead. Rules apply bounds and step limits
themselves (through ``guardrails``); cooldown, verification and barred moves are the engine's job,
because they are about *when*, not *what*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime

from perfpilot.api.spec import (
    LimitsPolicy,
    Objective,
    PerformanceProfileSpec,
    ScaleDownSpeed,
    ScaleUpSpeed,
)
from perfpilot.api.status import ContainerResources, Edit, PoolSize, Setting, TuningState, Verdict
from perfpilot.tuning import guardrails, signals
from perfpilot.tuning.classify import ClassificationDetail
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.observations import (
    RISE_SPAN_SECONDS,
    HpaLive,
    Observations,
    Peak,
    PoolLive,
    Series,
    Signal,
    Unknown,
)
from perfpilot.tuning.tables import (
    BEYOND_PEAK,
    CPU_TARGET_ROWS,
    MEMORY_TARGET_ROWS,
    POOL_TIERS,
    RESOURCE_ROWS,
    SCALE_DOWN_ROWS,
    SCALE_UP_ROWS,
    BehaviourRow,
    ResourceRow,
    TargetRow,
)
from perfpilot.tuning.thresholds import Thresholds
from perfpilot.tuning.values import compute_target_name, normalise_rules, selected_containers


@dataclass(frozen=True)
class RuleContext:
    profile: PerformanceProfileSpec
    observations: Observations
    detail: ClassificationDetail
    thresholds: Thresholds
    now_seconds: float
    state: TuningState = field(default_factory=TuningState)

    @property
    def slo_seconds(self) -> float:
        return self.profile.slo.latency_p95.seconds

    @property
    def tuned_hpa(self) -> HpaLive | None:
        """The live HPA when the profile tunes it."""
        return self.observations.live.hpa if self.profile.hpa.enabled else None

    @property
    def tuned_pool(self) -> PoolLive | None:
        return self.observations.live.pool if self.profile.pool.enabled else None

    def recent(self, signal: Signal, span_seconds: float) -> Signal:
        return signals.recent(signal, now_seconds=self.now_seconds, span_seconds=span_seconds)

    def covers(self, series: Series, span_seconds: float) -> bool:
        """Whether a series reaches back over ``span_seconds`` (one missing step tolerated)."""
        return series.timestamps_seconds[0] <= self.now_seconds - span_seconds + self.observations.step_seconds


@dataclass(frozen=True)
class RuleOutcome:
    rule: str
    change: ProposedChange | None = None
    note: str = ""  # why this rule proposes nothing
    blocked_by: tuple[str, ...] = ()


Rule = Callable[[RuleContext], Iterator[RuleOutcome]]


def _unknown_names(named: dict[str, Signal]) -> tuple[str, ...]:
    return tuple(name for name, signal in named.items() if isinstance(signal, Unknown))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms"


# --- building changes --------------------------------------------------------------------------------


def _target_change(
    ctx: RuleContext, *, setting: Setting, live_percent: int, new_percent: int, reason: str, table_row: str,
    emergency: bool = False,
) -> ProposedChange:
    return ProposedChange(
        target=compute_target_name(setting, profile=ctx.profile, live=ctx.observations.live),
        edit=Edit(setting=setting, from_value=live_percent, to_value=new_percent),
        reason=reason,
        table_row=table_row,
        emergency=emergency,
    )


def _step_note(goal: int, new: int, max_step: int, unit: str) -> str:
    return f", step limited to {max_step}{unit}" if goal != new else ""


def compute_resource_change(
    ctx: RuleContext, *, row: ResourceRow, cpu: bool, memory: bool, why: str, emergency: bool = False
) -> ProposedChange | str:
    """Scale the selected containers' requests by the row's factors; a string says why nothing moves."""
    profile = ctx.profile
    live = ctx.observations.live
    if not profile.resources.enabled:
        return "resources not tuned"
    before = selected_containers(profile, live)
    if not before:
        return "no selected container in the workload"
    guard = profile.guardrails
    bounds = profile.resources
    after: list[ContainerResources] = []
    for container in before:
        cpu_request = container.cpu_request_millicores
        cpu_limit = container.cpu_limit_millicores
        memory_request = container.memory_request_bytes
        memory_limit = container.memory_limit_bytes
        if cpu and row.cpu_factor is not None and cpu_request:
            upper = bounds.cpu.max.millicores
            if profile.resources.limits is LimitsPolicy.REQUESTS_ONLY and cpu_limit is not None:
                upper = min(upper, cpu_limit)  # the API server rejects requests above limits
            new_cpu = guardrails.compute_scaled_quantity(
                cpu_request, factor=row.cpu_factor, lower=bounds.cpu.min.millicores, upper=upper,
                max_step_percent=guard.max_step_percent,
            )
            cpu_limit = _follow_limit(profile.resources.limits, limit=cpu_limit, old=cpu_request, new=new_cpu)
            cpu_request = new_cpu
        if memory and row.memory_factor is not None and memory_request:
            upper = bounds.memory.max.bytes
            if profile.resources.limits is LimitsPolicy.REQUESTS_ONLY and memory_limit is not None:
                upper = min(upper, memory_limit)
            new_memory = guardrails.compute_scaled_quantity(
                memory_request, factor=row.memory_factor, lower=bounds.memory.min.bytes, upper=upper,
                max_step_percent=guard.max_step_percent, granularity=guardrails.MEBIBYTE,
            )
            memory_limit = _follow_limit(
                profile.resources.limits, limit=memory_limit, old=memory_request, new=new_memory
            )
            memory_request = new_memory
        after.append(ContainerResources(
            name=container.name,
            cpu_request_millicores=cpu_request,
            cpu_limit_millicores=cpu_limit,
            memory_request_bytes=memory_request,
            memory_limit_bytes=memory_limit,
        ))
    if after == before:
        return f"{row.label} row: requests already at their bounds"
    edit = Edit(setting=Setting.RESOURCES, from_value=before, to_value=after)
    sizes = ", ".join(_describe_resources(old, new) for old, new in zip(before, after, strict=True) if old != new)
    reason = f"{why}: resources row '{row.label}' ({_row_factors(row)}): {sizes}"
    coupled, coupled_note = _couple_cpu_target(ctx, before=before, after=after)
    return ProposedChange(
        target=compute_target_name(Setting.RESOURCES, profile=profile, live=live),
        edit=edit,
        reason=reason + coupled_note,
        table_row=row.label,
        coupled=coupled,
        coupled_target=(
            compute_target_name(Setting.HPA_CPU_TARGET, profile=profile, live=live) if coupled is not None else ""
        ),
        emergency=emergency,
    )


def _row_factors(row: ResourceRow) -> str:
    parts = []
    if row.cpu_factor is not None:
        parts.append(f"CPU {row.cpu_factor - 1:+.0%}")
    if row.memory_factor is not None:
        parts.append(f"memory {row.memory_factor - 1:+.0%}")
    return ", ".join(parts)


def _follow_limit(policy: LimitsPolicy, *, limit: int | None, old: int, new: int) -> int | None:
    if policy is LimitsPolicy.GUARANTEED:
        # Limits meet requests, but a raise never lowers a limit: a pod not yet Guaranteed (limit above
        # its request) would otherwise lose the room it already uses, an OOM kill for memory.
        if new == old:
            return limit  # a request this change does not move (at its bound) keeps its limit as well
        return limit if new > old and limit is not None and limit > new else new
    if policy is LimitsPolicy.REQUESTS_ONLY or limit is None:
        return limit
    return max(new, round(limit * new / old))


def _describe_resources(old: ContainerResources, new: ContainerResources) -> str:
    parts = []
    if old.cpu_request_millicores != new.cpu_request_millicores:
        parts.append(f"CPU {old.cpu_request_millicores}m -> {new.cpu_request_millicores}m")
    if old.memory_request_bytes != new.memory_request_bytes and old.memory_request_bytes and new.memory_request_bytes:
        parts.append(f"memory {old.memory_request_bytes / 2**20:.0f}Mi -> {new.memory_request_bytes / 2**20:.0f}Mi")
    return f"{new.name} " + " ".join(parts)


def _couple_cpu_target(
    ctx: RuleContext, *, before: list[ContainerResources], after: list[ContainerResources]
) -> tuple[Edit | None, str]:
    hpa = ctx.tuned_hpa
    if hpa is None or hpa.cpu_target_percent is None:
        return None, ""
    old_pod = ctx.observations.live.cpu_request_millicores_per_pod
    if not old_pod:
        return None, ""
    changed = {c.name: c.cpu_request_millicores or 0 for c in after}
    old_selected = sum(c.cpu_request_millicores or 0 for c in before)
    new_pod = old_pod - old_selected + sum(changed.values())
    if new_pod == old_pod or new_pod <= 0:
        return None, ""
    bounds = ctx.profile.hpa.cpu_target
    upper = bounds.max
    picked = compute_cpu_target_row(ctx)
    if new_pod < old_pod and picked is not None:
        # A cut raises the target at most to the objective's row (or keeps a live target above it).
        upper = min(upper, max(hpa.cpu_target_percent, picked[0].target_percent))
    new_target = guardrails.compute_coupled_cpu_target(
        live_target_percent=hpa.cpu_target_percent, old_request_millicores=old_pod, new_request_millicores=new_pod,
        lower=bounds.min, upper=upper, max_step_points=ctx.profile.guardrails.max_target_step,
    )
    if new_target == hpa.cpu_target_percent:
        return None, "; CPU target stays (coupled value clamped to its bounds/step)"
    if (new_target > hpa.cpu_target_percent) == (new_pod > old_pod):
        # A live target outside cpuTarget's bounds is clamped toward them, which can go the wrong way: a
        # raise with a higher target (or a cut with a lower one) would move the replica count, not keep it.
        return None, (f"; CPU target stays: live {hpa.cpu_target_percent}% is outside cpuTarget "
                      f"{bounds.min}-{bounds.max}%, and coupling would move it the wrong way")
    edit = Edit(setting=Setting.HPA_CPU_TARGET, from_value=hpa.cpu_target_percent, to_value=new_target)
    return edit, (f"; coupled CPU target {hpa.cpu_target_percent}% -> {new_target}% keeps the HPA's replica count "
                  f"(pod request {old_pod}m -> {new_pod}m)")


def compute_pool_grow(ctx: RuleContext, pool: PoolLive) -> tuple[PoolSize, str] | str:
    """One tier up (or one maxStepPercent step beyond Peak), within size.max, the step and the budget."""
    spec = ctx.profile.pool
    live_default = pool.default_pool_size
    step_limit = math.floor(live_default * (1 + ctx.profile.guardrails.max_step_percent / 100))
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
    while new_default > live_default and not guardrails.fits_server_budget(
        default_pool_size=new_default, reserve_pool_size=guardrails.compute_pool_reserve(new_default),
        pooler_replicas=pool.pooler_replicas, max_server_connections=spec.max_server_connections,
    ):
        new_default -= 1
        if "maxServerConnections" not in limits:
            limits.append("maxServerConnections")
    if new_default <= live_default:
        return (f"pool {live_default}/{pool.reserve_pool_size} cannot grow within maxServerConnections "
                f"{spec.max_server_connections} x {pool.pooler_replicas} pooler(s)")
    size = PoolSize(default_pool_size=new_default, reserve_pool_size=guardrails.compute_pool_reserve(new_default))
    note = f" (limited by {', '.join(limits)})" if limits else ""
    return size, row + note


def _pool_change(
    ctx: RuleContext, pool: PoolLive, size: PoolSize, *, reason: str, table_row: str, emergency: bool = False
) -> ProposedChange:
    before = PoolSize(default_pool_size=pool.default_pool_size, reserve_pool_size=pool.reserve_pool_size)
    return ProposedChange(
        target=compute_target_name(Setting.POOL_SIZE, profile=ctx.profile, live=ctx.observations.live),
        edit=Edit(setting=Setting.POOL_SIZE, from_value=before, to_value=size),
        reason=reason,
        table_row=table_row,
        emergency=emergency,
    )


def _behaviour_change(
    ctx: RuleContext, hpa: HpaLive, *, scale_up: bool, row: BehaviourRow, reason: str, emergency: bool = False
) -> ProposedChange | None:
    live_rules = hpa.scale_up if scale_up else hpa.scale_down
    wanted = (row.stabilization_window_seconds, "Max", (("Percent", row.percent, row.period_seconds),))
    if normalise_rules(live_rules, scale_up=scale_up) == wanted:
        return None
    setting = Setting.HPA_SCALE_UP if scale_up else Setting.HPA_SCALE_DOWN
    return ProposedChange(
        target=compute_target_name(setting, profile=ctx.profile, live=ctx.observations.live),
        edit=Edit(setting=setting, from_value=live_rules, to_value=row.to_rules()),
        reason=reason,
        table_row=row.name,
        emergency=emergency,
    )


def _max_replicas_change(ctx: RuleContext, hpa: HpaLive, *, why: str, emergency: bool) -> ProposedChange | str:
    ceiling = ctx.profile.hpa.max_replicas_ceiling
    if ceiling <= hpa.max_replicas:
        return f"HPA at maxReplicas {hpa.max_replicas} and maxReplicasCeiling {ceiling} allows no more"
    new_max = guardrails.compute_max_replicas_step(
        live_max=hpa.max_replicas, ceiling=ceiling, max_step_percent=ctx.profile.guardrails.max_step_percent
    )
    return ProposedChange(
        target=compute_target_name(Setting.HPA_MAX_REPLICAS, profile=ctx.profile, live=ctx.observations.live),
        edit=Edit(setting=Setting.HPA_MAX_REPLICAS, from_value=hpa.max_replicas, to_value=new_max),
        reason=f"{why}: HPA saturated at maxReplicas {hpa.max_replicas}; raising to {new_max} "
               f"(ceiling {ceiling}, step {ctx.profile.guardrails.max_step_percent}%)",
        table_row="maxReplicasCeiling",
        emergency=emergency,
    )


def compute_shortage(ctx: RuleContext) -> str | None:
    """Why the service is short of capacity now (SLO breached, or pool clients waiting), or None."""
    # Only samples that cover the span count: one slow scrape after a gap is not a shortage.
    span = ctx.thresholds.recent_span_seconds
    latency = ctx.recent(ctx.observations.latency_p95_seconds, span)
    if isinstance(latency, Series) and ctx.covers(latency, span) and latency.mean > ctx.slo_seconds:
        return f"p95 {_ms(latency.mean)} > SLO {_ms(ctx.slo_seconds)}"
    saturated = compute_saturation(ctx)
    if saturated is not None:
        return saturated
    waiting_span = ctx.thresholds.pool_sustained_span_seconds
    waiting = ctx.recent(ctx.observations.pool_client_waiting, waiting_span)
    if ctx.tuned_pool is not None and isinstance(waiting, Series) and ctx.covers(waiting, waiting_span):
        fraction = signals.compute_fraction(waiting.values, lambda v: v > 0)
        if fraction >= ctx.thresholds.pool_sustained_fraction:
            span = ctx.thresholds.pool_sustained_span_seconds
            return f"pool clients waiting in {fraction:.0%} of the last {span:.0f}s"
    return None


# --- rules, in order of precedence ---------------------------------------------------------------------


def decide_slo_emergency(ctx: RuleContext) -> Iterator[RuleOutcome]:
    """p95 above twice the SLO: the one case that may act at once, and only toward more capacity."""
    name = "SLO emergency"
    latency = ctx.recent(ctx.observations.latency_p95_seconds, ctx.thresholds.emergency_latency_span_seconds)
    if isinstance(latency, Unknown):
        yield RuleOutcome(name, note="p95 unknown", blocked_by=("latency_p95_seconds",))
        return
    span = ctx.thresholds.emergency_latency_span_seconds
    if not ctx.covers(latency, span):
        # After a scrape gap the newest sample alone is not "every sample of the last 2 minutes".
        yield RuleOutcome(name, note=f"no emergency: p95 samples do not cover the last {span:.0f}s "
                                     f"({len(latency.values)} since {latency.timestamps_seconds[0]:.0f})")
        return
    limit = ctx.thresholds.emergency_latency_multiple * ctx.slo_seconds
    if latency.minimum <= limit:
        yield RuleOutcome(name, note=f"no emergency (p95 {_ms(latency.latest)} <= 2 x SLO {_ms(ctx.slo_seconds)})")
        return
    why = (f"SLO emergency (p95 {_ms(latency.minimum)}+ > {ctx.thresholds.emergency_latency_multiple:g} x SLO "
           f"{_ms(ctx.slo_seconds)} for {ctx.thresholds.emergency_latency_span_seconds:.0f}s)")
    hpa = ctx.tuned_hpa
    at_max = hpa is not None and hpa.current_replicas >= hpa.max_replicas
    pool_growth = compute_pool_growth_for_breach(ctx, span)
    if pool_growth is not None:
        # 0. Requests queue for a database connection: the pool is the cheapest capacity, and a CPU target
        # lowered during its backlog would go on costing CPU once the pool is grown.
        grow = _grow_pool(ctx, pool_growth, why=f"{why}, {pool_growth.evidence}", emergency=True)
        yield RuleOutcome(name, change=grow)
        yield RuleOutcome(name, note=f"{why}: no lower CPU target while {pool_growth.evidence}")
    # 1. Below maxReplicas the HPA can add pods: a lower CPU target is the cheapest move (no restart).
    if pool_growth is None and hpa is not None and hpa.cpu_target_percent is not None and not at_max:
        bounds = ctx.profile.hpa.cpu_target
        step = ctx.profile.guardrails.max_target_step
        new = guardrails.compute_target_step(
            live_percent=hpa.cpu_target_percent, goal_percent=hpa.cpu_target_percent - step,
            lower=bounds.min, upper=hpa.cpu_target_percent, max_step_points=step,
        )
        if new < hpa.cpu_target_percent:
            yield RuleOutcome(name, change=_target_change(
                ctx, setting=Setting.HPA_CPU_TARGET, live_percent=hpa.cpu_target_percent, new_percent=new,
                reason=f"{why}: HPA at {hpa.current_replicas} < maxReplicas {hpa.max_replicas}: CPU target "
                       f"{hpa.cpu_target_percent}% -> {new}% (down {step} points toward cpuTarget.min "
                       f"{bounds.min}%) for more replicas",
                table_row="latency feedback", emergency=True,
            ))
    # 2. At maxReplicas: more replicas, within maxReplicasCeiling.
    if hpa is not None and at_max:
        change = _max_replicas_change(ctx, hpa, why=why, emergency=True)
        yield RuleOutcome(name, change=change) if isinstance(change, ProposedChange) else RuleOutcome(name, note=change)
    # 3. Bigger pods: memory whenever memory-bound; CPU only when CPU-bound with no replica left to add.
    provisioning = ctx.detail.provisioning
    saturated = provisioning.label != "Unknown" and compute_saturation(ctx) is not None
    cpu_bound = (provisioning.cpu_bound and (hpa is None or at_max)) or saturated
    if cpu_bound or provisioning.memory_bound:
        label = "Under" if cpu_bound and provisioning.memory_bound else ("CpuBound" if cpu_bound else "MemoryBound")
        row = RESOURCE_ROWS[label]
        evidence = compute_saturation(ctx) or provisioning.evidence
        where = f", at maxReplicas {hpa.max_replicas}" if hpa is not None and cpu_bound else ""
        change_or_note = compute_resource_change(
            ctx, row=row, cpu=cpu_bound, memory=provisioning.memory_bound,
            why=f"{why}, {evidence}{where}", emergency=True,
        )
        if isinstance(change_or_note, ProposedChange):
            yield RuleOutcome(name, change=change_or_note)
        else:
            yield RuleOutcome(name, note=change_or_note)
    elif provisioning.cpu_bound and hpa is not None:
        yield RuleOutcome(name, note=f"CPU-bound but the HPA at {hpa.current_replicas} < maxReplicas "
                                     f"{hpa.max_replicas} can still add pods: no CPU raise")
    if hpa is not None and ctx.profile.hpa.scale_up is ScaleUpSpeed.AUTO:
        faster = _behaviour_change(
            ctx, hpa, scale_up=True, row=SCALE_UP_ROWS["Aggressive"], emergency=True,
            reason=f"{why}: scale-up row 'Aggressive' (window 0s, +100% per 15s)",
        )
        # Toward capacity only if it never allows fewer replicas per period, at the live count and at
        # minReplicas: +100%/15s alone is slower than Kubernetes' default Max(+4 pods, +100%) below 4 pods.
        if faster is not None and guardrails.is_toward_capacity(
                faster, replicas=guardrails.compute_replica_counts(hpa)):
            yield RuleOutcome(name, change=faster)
    yield RuleOutcome(name, note=f"{why}, but no capacity move is left within the bounds")


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
    fraction = signals.compute_fraction(waiting.values, lambda v: v > 0)
    return f"pool clients waiting in {fraction:.0%} of the last {span_seconds:.0f}s"


def _grow_pool(ctx: RuleContext, growth: PoolGrowth, *, why: str, emergency: bool) -> ProposedChange:
    pool, size = growth.pool, growth.size
    return _pool_change(
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
    blocked = _unknown_names({"pool_client_waiting": ctx.observations.pool_client_waiting,
                              "pool_server_active": ctx.observations.pool_server_active})
    if blocked or isinstance(waiting, Unknown) or isinstance(utilisation, Unknown):
        yield RuleOutcome(name, note="pool signals unknown", blocked_by=blocked or ("pool_client_waiting",))
        return
    waiting_fraction = signals.compute_fraction(waiting.values, lambda v: v > 0)
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
    elif waiting_fraction >= thresholds.pool_sustained_fraction:
        why = (f"Pool clients waiting in {waiting_fraction:.0%} of the last {span:.0f}s "
               f"(>= {thresholds.pool_sustained_fraction:.0%}, peak {waiting.maximum:.0f})")
    elif busy_fraction >= thresholds.pool_sustained_fraction:
        why = (f"Pool utilisation above {thresholds.pool_grow_utilisation_percent:.0f}% (critical) in "
               f"{busy_fraction:.0%} of the last {span:.0f}s (peak {utilisation.maximum:.0f}%)")
    elif (outgrown := compute_pool_outgrown(ctx, pool)) is not None:
        why = outgrown
    elif (breached := compute_breach_with_pool_waiting(ctx)) is not None:
        why = breached
    else:
        yield RuleOutcome(name, note=f"no sustained pool waiting (waiting in {waiting_fraction:.0%}, "
                                     f"> {thresholds.pool_grow_utilisation_percent:.0f}% in {busy_fraction:.0%})")
        return
    grown = compute_pool_grow(ctx, pool)
    if isinstance(grown, str):
        yield RuleOutcome(name, note=f"{why}; {grown}")
        return
    size, row = grown
    yield RuleOutcome(name, change=_grow_pool(ctx, PoolGrowth(pool, size, row, why), why=why, emergency=emergency))


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
    return f"p95 {_ms(latency.mean)} > SLO {_ms(ctx.slo_seconds)} with {_describe_waiting(waiting, span)}"


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
    waited = signals.compute_fraction(waiting.values, lambda v: v > 0)
    return (f"Pool demand peak {per_pooler:.0f} connections per pooler > pool {pool.default_pool_size} in the "
            f"window, clients waiting in {waited:.0%} of it (bursts too short to be sustained)")


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
                f"and p95 {_ms(latency.mean)} > SLO {_ms(ctx.slo_seconds)}")
    wants_more = target * (1 + ctx.thresholds.hpa_tolerance)
    if cpu.mean <= wants_more:
        return None
    return (f"HPA saturated at maxReplicas {hpa.max_replicas} with CPU {cpu.mean:.0f}% > {wants_more:.0f}% "
            f"(target {target}% + the HPA's {ctx.thresholds.hpa_tolerance:.0%} tolerance)")


def decide_under_provisioning(ctx: RuleContext) -> Iterator[RuleOutcome]:
    """Containers bound on CPU or memory get the resources row; a saturated HPA gets more maxReplicas, or,
    without maxReplicasCeiling room, bigger pods (the CPU-bound row: the pods are too small at maxReplicas)."""
    name = "under-provisioning"
    provisioning = ctx.detail.provisioning
    if provisioning.label == "Unknown":
        yield RuleOutcome(name, note="provisioning unknown", blocked_by=provisioning.blocked_by)
    elif provisioning.cpu_bound or provisioning.memory_bound:
        row = RESOURCE_ROWS[provisioning.label]
        cpu_bound, why = provisioning.cpu_bound, f"{row.label} ({provisioning.evidence})"
        saturated_now = compute_saturation(ctx)
        live_hpa = ctx.tuned_hpa
        if (not cpu_bound and saturated_now is not None and live_hpa is not None
                and ctx.profile.hpa.max_replicas_ceiling <= live_hpa.max_replicas):
            # Memory-bound with a saturated HPA: both rows at once (Under), one rollout instead of two.
            row, cpu_bound = RESOURCE_ROWS["Under"], True
            why = f"{why}; {saturated_now}, no maxReplicasCeiling room: one rollout for both"
        change = compute_resource_change(
            ctx, row=row, cpu=cpu_bound, memory=provisioning.memory_bound, why=why,
        )
        yield RuleOutcome(name, change=change) if isinstance(change, ProposedChange) else RuleOutcome(name, note=change)
    hpa = ctx.tuned_hpa
    if hpa is None or hpa.current_replicas < hpa.max_replicas:
        return
    latency = ctx.recent(ctx.observations.latency_p95_seconds, ctx.thresholds.recent_span_seconds)
    if isinstance(latency, Unknown):
        yield RuleOutcome(name, note="p95 unknown", blocked_by=("latency_p95_seconds",))
        return
    saturated = compute_saturation(ctx)
    breached = latency.mean > ctx.slo_seconds
    if not breached and saturated is None:
        return
    why = saturated or f"SLO breached (p95 {_ms(latency.mean)} > {_ms(ctx.slo_seconds)}) at maxReplicas"
    if ctx.profile.hpa.max_replicas_ceiling > hpa.max_replicas:
        change = _max_replicas_change(ctx, hpa, why=why, emergency=False)
        yield RuleOutcome(name, change=change) if isinstance(change, ProposedChange) else RuleOutcome(name, note=change)
        return
    if saturated is None:
        yield RuleOutcome(name, note=f"{why}, CPU under its target and no maxReplicasCeiling room (the pods are "
                                     f"not what is short)")
        return
    if provisioning.label == "Unknown":
        return  # a resources change needs what provisioning needs (said above)
    row = RESOURCE_ROWS["CpuBound"]
    change_or_note = compute_resource_change(
        ctx, row=row, cpu=True, memory=False, why=f"{saturated}, no maxReplicasCeiling room: pods too small",
    )
    if isinstance(change_or_note, ProposedChange):
        yield RuleOutcome(name, change=change_or_note)
    else:
        yield RuleOutcome(name, note=change_or_note)


def compute_last_resize_settled(state: TuningState) -> datetime | None:
    """When perfpilot's last change of the pods' resources (or its rollback) was judged: until its verdict
    the rollout and the HPA's reaction to it are still in the signals, so a breach then says nothing about
    the new size. A change not judged yet counts from when it was written (the hold covers it anyway)."""
    for record in reversed(guardrails.list_records(state)):
        if record.edit.setting is Setting.RESOURCES:
            return max(record.at, record.verdict_at) if record.verdict_at is not None else record.at
    return None


def decide_spike_headroom(ctx: RuleContext) -> Iterator[RuleOutcome]:
    """Pods too small for the spikes: the SLO was breached while the HPA scaled up, the fastest scale-up row
    (Aggressive) is already live, and minReplicas pods cannot carry a spike like the largest of the peak
    window while new pods start (``compute_spike_need``). Bigger pods are the one lever left: the CPU-bound
    row, CPU +50%, with the coupled target (the over-provisioning rule will not cut them back while the
    spike check fails)."""
    name = "spike headroom"
    hpa = ctx.tuned_hpa
    if hpa is None or hpa.cpu_target_percent is None:
        return
    latency, replicas = ctx.observations.latency_p95_seconds, ctx.observations.replicas
    if isinstance(latency, Unknown) or isinstance(replicas, Unknown):
        return  # the behaviour rule says which is missing
    settled = compute_last_resize_settled(ctx.state)
    # Only a breach since the last resize was judged says the pods are still too small; an older one was
    # answered already, or came from the resize's own rollout.
    after = settled.timestamp() if settled is not None else -math.inf
    if not _slo_breached_while_scaling_up(latency, replicas, ctx.slo_seconds, after_seconds=after):
        return
    aggressive = SCALE_UP_ROWS["Aggressive"]
    if _behaviour_change(ctx, hpa, scale_up=True, row=aggressive, reason="") is not None:
        yield RuleOutcome(name, note="SLO breached while scaling up: the Aggressive scale-up row comes first")
        return
    pod = ctx.observations.live.cpu_request_millicores_per_pod
    if not pod:
        return
    missing = find_spike_signals_missing(ctx.observations)
    if missing:
        yield RuleOutcome(name, note=f"SLO breached while scaling up, but {', '.join(missing)} unknown",
                          blocked_by=missing)
        return
    need = compute_spike_need(ctx.observations, pods=max(1, hpa.min_replicas))
    carried = need.pods * pod
    head = f"SLO {_ms(ctx.slo_seconds)} breached while scaling up with the Aggressive scale-up row live"
    usual_pods = math.ceil(need.usual_millicores / (pod * hpa.cpu_target_percent / 100))
    if usual_pods > need.pods:
        # Above minReplicas the HPA sizes the fleet to the target: bigger pods mean fewer of them, not more
        # headroom; only the minReplicas floor gains from bigger pods.
        yield RuleOutcome(name, note=f"{head}; the usual load needs {usual_pods} pods > minReplicas {need.pods}: "
                                     f"the CPU target, not the pod size, sets the headroom there")
        return
    if carried >= need.needed_millicores:
        yield RuleOutcome(name, note=f"{head}; minReplicas {need.pods} x {pod}m = {carried}m carry a spike "
                                     f"({need.evidence})")
        return
    if ctx.detail.provisioning.label == "Unknown":
        return  # a resources change needs what provisioning needs (the under-provisioning rule said it)
    change = compute_resource_change(
        ctx, row=RESOURCE_ROWS["CpuBound"], cpu=True, memory=False,
        why=f"{head}; minReplicas {need.pods} x {pod}m = {carried}m cannot carry a spike while new pods start "
            f"({need.evidence}): pods too small for the spikes",
    )
    yield RuleOutcome(name, change=change) if isinstance(change, ProposedChange) else RuleOutcome(name, note=change)


def compute_cpu_target_row(ctx: RuleContext) -> tuple[TargetRow, str] | None:
    """The CPU-target table row for the objective and load pattern; None when the load is unknown."""
    objective = ctx.profile.objective
    if objective is Objective.COST:
        return CPU_TARGET_ROWS["Cost"], "objective Cost"
    if objective is Objective.RELIABILITY:
        return CPU_TARGET_ROWS["Critical"], "objective Reliability"
    load = ctx.detail.load
    if load.label not in CPU_TARGET_ROWS:
        return None
    return CPU_TARGET_ROWS[load.label], f"{load.label} load ({load.evidence})"


def decide_hpa_targets(ctx: RuleContext) -> Iterator[RuleOutcome]:
    """CPU target: table row plus latency feedback; memory target: memory row."""
    hpa = ctx.tuned_hpa
    if hpa is None:
        return
    yield from _decide_cpu_target(ctx, hpa)
    yield from _decide_memory_target(ctx, hpa)


def find_coupled_target_origin(state: TuningState, *, live_percent: int) -> int | None:
    """Where the live CPU target came from when it is the coupled edit of a kept request raise (the latest
    move of the target), or None.

    A rolled-back change restored the target before it, so the search goes on past it; a pending change is
    not judged yet; a live value other than the coupled one was set by someone else.
    """
    for record in reversed(guardrails.list_records(state)):
        if record.verdict in (Verdict.ROLLED_BACK, Verdict.REVERTED):
            continue
        if record.edit.setting is Setting.HPA_CPU_TARGET:
            return None
        coupled = record.coupled
        if coupled is not None and coupled.setting is Setting.HPA_CPU_TARGET:
            before, after = coupled.from_value, coupled.to_value
            lowered = isinstance(before, int) and isinstance(after, int) and after < before
            judged = record.verdict in (Verdict.KEPT, Verdict.INCONCLUSIVE)
            return before if lowered and judged and after == live_percent and isinstance(before, int) else None
    return None


def _decide_cpu_target(ctx: RuleContext, hpa: HpaLive) -> Iterator[RuleOutcome]:
    name = "HPA CPU target"
    live = hpa.cpu_target_percent
    if live is None:
        return
    bounds = ctx.profile.hpa.cpu_target
    step = ctx.profile.guardrails.max_target_step
    latency = ctx.observations.latency_p95_seconds
    cpu = signals.compute_cpu_utilisation_percent(ctx.observations)
    blocked = _unknown_names({"latency_p95_seconds": latency, "cpu_usage_millicores_per_pod": cpu})
    if isinstance(latency, Unknown) or isinstance(cpu, Unknown):
        yield RuleOutcome(name, note="p95 or CPU unknown", blocked_by=blocked)
        return
    recent_latency = ctx.recent(latency, ctx.thresholds.recent_span_seconds)
    recent_cpu = ctx.recent(cpu, ctx.thresholds.recent_span_seconds)
    if isinstance(recent_latency, Unknown) or isinstance(recent_cpu, Unknown):
        # A coarse reader step can leave a series known over the window yet without a sample this recent:
        # only latency feedback needs one; the table row below reads the whole window.
        yield RuleOutcome(name, note="no p95 or CPU sample in the last 5 minutes: no latency feedback")
    elif recent_latency.mean > ctx.slo_seconds and recent_cpu.mean < live:
        pool_growth = compute_pool_growth_for_breach(ctx, ctx.thresholds.recent_span_seconds)
        if pool_growth is not None:
            yield RuleOutcome(name, note=f"latency feedback: p95 {_ms(recent_latency.mean)} > SLO with "
                                         f"{pool_growth.evidence}: the pool grows first, not the CPU target")
            return
        new = guardrails.compute_target_step(
            live_percent=live, goal_percent=live - step, lower=bounds.min, upper=live, max_step_points=step
        )
        if new < live:
            yield RuleOutcome(name, change=_target_change(
                ctx, setting=Setting.HPA_CPU_TARGET, live_percent=live, new_percent=new, table_row="latency feedback",
                reason=f"Latency feedback: p95 {_ms(recent_latency.mean)} > SLO {_ms(ctx.slo_seconds)} with CPU "
                       f"{recent_cpu.mean:.0f}% below its target {live}%: CPU target {live}% -> {new}% "
                       f"(step {step} points toward cpuTarget.min {bounds.min}%)",
            ))
            return
        yield RuleOutcome(name, note=f"latency feedback wants a lower CPU target but {live}% is at cpuTarget.min")
        return
    picked = compute_cpu_target_row(ctx)
    if picked is None:
        yield RuleOutcome(name, note="load pattern unknown", blocked_by=ctx.detail.load.blocked_by)
        return
    row, why = picked
    goal = guardrails.clamp(row.target_percent, lower=bounds.min, upper=bounds.max)
    new = guardrails.compute_target_step(
        live_percent=live, goal_percent=goal, lower=bounds.min, upper=bounds.max, max_step_points=step
    )
    clamp_note = f" (clamped to cpuTarget {bounds.min}-{bounds.max}% = {goal}%)" if goal != row.target_percent else ""
    head = f"{why}: CPU target row '{row.label}' = {row.target_percent}%{clamp_note}, live {live}%"
    if new == live:
        yield RuleOutcome(name, note=f"{head}: no change")
        return
    if new > live:
        if isinstance(recent_latency, Unknown):
            # A raise takes capacity away: "p95 low all window" must include the last minutes.
            yield RuleOutcome(name, note=f"{head}: raising needs a p95 sample in the last "
                                         f"{ctx.thresholds.recent_span_seconds / 60:g} minutes")
            return
        covered = ctx.covers(latency, ctx.observations.window_seconds)
        origin = find_coupled_target_origin(ctx.state, live_percent=live)
        if origin is not None:
            # The target was lowered only to keep the replica count through a request raise, not because
            # latency asked for it: once that change is judged, the SLO met all window is enough to return to
            # where it was (further up is an ordinary raise).
            if latency.maximum > ctx.slo_seconds or not covered:
                yield RuleOutcome(name, note=f"{head}: the coupled target returns to its row with the SLO met all "
                                             f"window (p95 peak {_ms(latency.maximum)})")
                return
            new = min(new, origin)
            head += (f", coupled with the last request raise (from {origin}%); SLO met all window (p95 peak "
                     f"{_ms(latency.maximum)})")
        else:
            relax = ctx.thresholds.relax_latency_fraction * ctx.slo_seconds
            if latency.maximum >= relax or not covered:
                yield RuleOutcome(name, note=f"{head}: raising needs p95 under {_ms(relax)} "
                                             f"({ctx.thresholds.relax_latency_fraction:.0%} of SLO) all window "
                                             f"(peak {_ms(latency.maximum)})")
                return
            head += f", p95 peak {_ms(latency.maximum)} < {ctx.thresholds.relax_latency_fraction:.0%} of SLO"
    yield RuleOutcome(name, change=_target_change(
        ctx, setting=Setting.HPA_CPU_TARGET, live_percent=live, new_percent=new, table_row=row.label,
        reason=f"{head} -> {new}%{_step_note(goal, new, step, ' points')}",
    ))


def _decide_memory_target(ctx: RuleContext, hpa: HpaLive) -> Iterator[RuleOutcome]:
    name = "HPA memory target"
    live = hpa.memory_target_percent
    if live is None:
        return
    memory = ctx.detail.memory
    if memory.label not in MEMORY_TARGET_ROWS:
        yield RuleOutcome(name, note="memory pattern unknown", blocked_by=memory.blocked_by)
        return
    row = MEMORY_TARGET_ROWS[memory.label]
    bounds = ctx.profile.hpa.memory_target
    step = ctx.profile.guardrails.max_target_step
    goal = guardrails.clamp(row.target_percent, lower=bounds.min, upper=bounds.max)
    new = guardrails.compute_target_step(
        live_percent=live, goal_percent=goal, lower=bounds.min, upper=bounds.max, max_step_points=step
    )
    head = (f"{memory.label} memory ({memory.evidence}): memory target row '{row.label}' = {row.target_percent}%"
            f"{f' (clamped to {goal}%)' if goal != row.target_percent else ''}, live {live}%")
    if new == live:
        yield RuleOutcome(name, note=f"{head}: no change")
        return
    if new > live:
        latency = ctx.observations.latency_p95_seconds
        if isinstance(latency, Unknown):
            yield RuleOutcome(name, note=f"{head}: raising needs p95", blocked_by=("latency_p95_seconds",))
            return
        if latency.maximum > ctx.slo_seconds:
            yield RuleOutcome(name, note=f"{head}: raising needs the SLO met all window "
                                         f"(peak {_ms(latency.maximum)})")
            return
    yield RuleOutcome(name, change=_target_change(
        ctx, setting=Setting.HPA_MEMORY_TARGET, live_percent=live, new_percent=new, table_row=row.label,
        reason=f"{head} -> {new}%{_step_note(goal, new, step, ' points')}",
    ))


def _slo_breached_while_scaling_up(
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
    (infinite when from nothing): a lower bound that needs no more than the two peaks already read.
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
    blocked = _unknown_names(needed)
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
    staying = hpa is not None and _behaviour_change(ctx, hpa, scale_up=True, row=aggressive, reason="") is None
    multiple = thresholds.flash_crowd_leave_multiple if staying else thresholds.flash_crowd_multiple
    if rise >= multiple:
        return aggressive, (
            f"flash crowd (request rate x{rise:.1f} within {thresholds.flash_crowd_span_seconds:.0f}s "
            f">= x{multiple:g}{' to stay Aggressive' if staying else ''})")
    if _slo_breached_while_scaling_up(latency, replicas, ctx.slo_seconds):
        return SCALE_UP_ROWS["Aggressive"], f"SLO {_ms(ctx.slo_seconds)} breached while scaling up"
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
        return None, _unknown_names({"replicas": replicas}) + load.blocked_by
    reversals = signals.compute_direction_reversals(replicas.values)
    slow = SCALE_DOWN_ROWS["Slow"]
    hpa = ctx.observations.live.hpa
    staying = hpa is not None and _behaviour_change(ctx, hpa, scale_up=False, row=slow, reason="") is None
    least = ctx.thresholds.flapping_leave_reversals + 1 if staying else ctx.thresholds.flapping_reversals
    if reversals >= least:
        return slow, (f"replica count flapping ({reversals} reversals >= {least}"
                      f"{' to stay Slow' if staying else ''})")
    if load.label == "Bursty":
        return SCALE_DOWN_ROWS["Slow"], f"bursty load ({load.evidence})"
    if ctx.profile.objective is Objective.COST:
        return SCALE_DOWN_ROWS["Fast"], f"objective Cost, steady load, {reversals} reversals"
    return SCALE_DOWN_ROWS["Moderate"], f"steady load, {reversals} replica reversals"


def _describe_row(row: BehaviourRow, *, scale_up: bool) -> str:
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
        reason = f"{why}: {direction} row '{row.name}' ({_describe_row(row, scale_up=scale_up)})"
        change = _behaviour_change(ctx, hpa, scale_up=scale_up, row=row, reason=reason)
        if change is None:
            yield RuleOutcome(name, note=f"{reason}: already in place")
        else:
            yield RuleOutcome(name, change=change)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g}h"


def check_cpu_cut_covers_peak(ctx: RuleContext, change: ProposedChange) -> str | None:
    """None when the cut pods still carry the peak window's total CPU with headroom, else why not.

    Capacity is maxReplicas x the new pod request x the CPU target the HPA will have (the coupled one), or,
    without a CPU-target HPA, the largest replica count of the window x the new pod request.
    """
    observations = ctx.observations
    peak = observations.peak_cpu_usage_millicores_total
    span = _hours(observations.peak_window_seconds)
    if isinstance(peak, Unknown):
        return f"CPU peak over {span} unknown ({peak.reason}): no CPU cut"
    before = sum(c.cpu_request_millicores or 0 for c in change.edit.from_value) if isinstance(
        change.edit.from_value, list) else 0
    after = sum(c.cpu_request_millicores or 0 for c in change.edit.to_value) if isinstance(
        change.edit.to_value, list) else 0
    old_pod = observations.live.cpu_request_millicores_per_pod or 0
    new_pod = old_pod - before + after
    hpa = ctx.tuned_hpa or observations.live.hpa
    if hpa is not None and hpa.cpu_target_percent is not None:
        target = hpa.cpu_target_percent
        if change.coupled is not None and change.coupled.setting is Setting.HPA_CPU_TARGET:
            assert isinstance(change.coupled.to_value, int)
            target = change.coupled.to_value
        capacity = hpa.max_replicas * new_pod * target / 100
        how = f"maxReplicas {hpa.max_replicas} x {new_pod}m x target {target}%"
    else:
        replicas = observations.replicas
        if isinstance(replicas, Unknown):
            return f"replicas unknown ({replicas.reason}): no CPU cut"
        capacity = replicas.maximum * new_pod
        how = f"{replicas.maximum:.0f} replicas x {new_pod}m"
    needed = ctx.thresholds.peak_cpu_headroom_multiple * peak
    if capacity < needed:
        return (f"{how} = {capacity:.0f}m would not cover {ctx.thresholds.peak_cpu_headroom_multiple:g} x the "
                f"{span} CPU peak {peak:.0f}m = {needed:.0f}m")
    usage = observations.cpu_usage_millicores_per_pod
    if isinstance(usage, Series):
        surge = ctx.thresholds.flash_crowd_multiple * usage.maximum
        if new_pod < surge:
            return (f"{new_pod}m per pod would not hold a flash crowd ({ctx.thresholds.flash_crowd_multiple:g} x the "
                    f"window's peak {usage.maximum:.0f}m = {surge:.0f}m) while new pods start")
    return check_cut_pods_carry_the_largest_rise(ctx, new_pod_millicores=new_pod)


@dataclass(frozen=True)
class SpikeNeed:
    """What the running pods must carry alone while new ones start (see ``compute_spike_need``)."""

    pods: int
    needed_millicores: float
    usual_millicores: float  # the CPU of the window's usual (median) rate
    evidence: str


def find_spike_signals_missing(observations: Observations) -> tuple[str, ...]:
    """The signals ``compute_spike_need`` needs that are unknown."""
    needed: dict[str, Signal | Peak] = {
        "peak_request_rate_rise_per_second": observations.peak_request_rate_rise_per_second,
        "request_rate_per_second": observations.request_rate_per_second,
        "cpu_usage_millicores_per_pod": observations.cpu_usage_millicores_per_pod,
        "replicas": observations.replicas,
    }
    return tuple(name for name, value in needed.items() if isinstance(value, Unknown))


def compute_spike_need(observations: Observations, *, pods: int) -> SpikeNeed:
    """The CPU ``pods`` pods must carry alone: the window's usual rate (median) plus the largest rise of the
    rate within RISE_SPAN_SECONDS seen over the peak window, and at least the window's peak rate, at the
    window's CPU per request/s. Callers check ``find_spike_signals_missing`` first.

    A spike arrives faster than a pod starts, so the pods already running take it alone; the rate (not the
    CPU) measures it, since CPU is capped by the pods that served it. The spike starts from the usual rate,
    so a spike inside the window is not counted twice.
    """
    rise, rate = observations.peak_request_rate_rise_per_second, observations.request_rate_per_second
    usage, replicas = observations.cpu_usage_millicores_per_pod, observations.replicas
    assert not isinstance(rise, Unknown) and isinstance(rate, Series)
    assert isinstance(usage, Series) and isinstance(replicas, Series)
    if rate.mean <= 0:
        return SpikeNeed(pods, 0.0, 0.0, "no requests in the window")
    per_request = usage.mean * replicas.mean / rate.mean
    usual = signals.compute_median(rate.values)
    spike_rate = max(rate.maximum, usual + max(0.0, rise))
    evidence = (f"max(the window's peak {rate.maximum:.1f}/s, its median {usual:.1f}/s + the largest rise over "
                f"{_hours(observations.peak_window_seconds)} {rise:.1f}/s within {RISE_SPAN_SECONDS // 60} min) "
                f"= {spike_rate:.1f}/s at {per_request:.0f}m per request/s = {spike_rate * per_request:.0f}m")
    return SpikeNeed(pods, spike_rate * per_request, usual * per_request, evidence)


def check_cut_pods_carry_the_largest_rise(ctx: RuleContext, *, new_pod_millicores: int) -> str | None:
    """None when the pods running now, cut, still carry a spike like the largest of the peak window."""
    observations = ctx.observations
    missing = find_spike_signals_missing(observations)
    if missing:
        return f"{', '.join(missing)} unknown: no CPU cut"
    replicas = observations.replicas
    assert isinstance(replicas, Series)
    pods = round(replicas.values[-1])
    hpa = ctx.tuned_hpa or observations.live.hpa
    if hpa is not None:
        # The floor the HPA may go back to, not the pods of this moment: the spike check of the spike-headroom
        # rule counts the same pods, so a cut cannot undo what that rule grew.
        pods = min(pods, max(1, hpa.min_replicas))
    need = compute_spike_need(observations, pods=pods)
    if need.needed_millicores <= 0:
        return "no requests in the window to size a spike by: no CPU cut"
    carried = need.pods * new_pod_millicores
    if carried < need.needed_millicores:
        return (f"{need.pods} pods x {new_pod_millicores}m = {carried:.0f}m would not carry a spike while new pods "
                f"start: {need.evidence}")
    return None


def check_memory_cut_covers_peak(ctx: RuleContext, change: ProposedChange) -> str | None:
    """None when the cut memory request still holds the peak window's largest working set with headroom."""
    observations = ctx.observations
    peak = observations.peak_memory_working_set_bytes_per_pod
    span = _hours(observations.peak_window_seconds)
    if isinstance(peak, Unknown):
        return f"memory peak over {span} unknown ({peak.reason}): no memory cut"
    before = sum(c.memory_request_bytes or 0 for c in change.edit.from_value) if isinstance(
        change.edit.from_value, list) else 0
    after = sum(c.memory_request_bytes or 0 for c in change.edit.to_value) if isinstance(
        change.edit.to_value, list) else 0
    new_pod = (observations.live.memory_request_bytes_per_pod or 0) - before + after
    hpa = ctx.tuned_hpa or observations.live.hpa
    fraction = ctx.thresholds.memory_bound_request_fraction
    if hpa is not None and hpa.memory_target_percent is not None:
        fraction = min(fraction, hpa.memory_target_percent / 100)
    needed = ctx.thresholds.peak_memory_headroom_multiple * peak
    if new_pod * fraction < needed:
        multiple = ctx.thresholds.peak_memory_headroom_multiple
        return (f"{new_pod / 2**20:.0f}Mi x {fraction:.0%} would not hold {multiple:g} x the {span} working-set "
                f"peak {peak / 2**20:.0f}Mi")
    return None


def decide_over_provisioning(ctx: RuleContext) -> Iterator[RuleOutcome]:
    """The Over row, for each resource only while the cut still covers the peak of guardrails.peakWindow."""
    name = "over-provisioning"
    provisioning = ctx.detail.provisioning
    if provisioning.label == "Unknown":
        yield RuleOutcome(name, note="provisioning unknown", blocked_by=provisioning.blocked_by)
        return
    if not (provisioning.cpu_over or provisioning.memory_over):
        return
    latency = ctx.observations.latency_p95_seconds
    if isinstance(latency, Series) and not ctx.covers(latency, ctx.observations.window_seconds):
        yield RuleOutcome(name, note="over-provisioned, but the window is not yet covered")
        return
    row = RESOURCE_ROWS["Over"]
    cpu, memory = provisioning.cpu_over, provisioning.memory_over
    notes: list[str] = []
    blocked: list[str] = []
    while cpu or memory:
        change = compute_resource_change(
            ctx, row=row, cpu=cpu, memory=memory, why=f"{row.label} ({provisioning.evidence})",
        )
        if not isinstance(change, ProposedChange):
            notes.append(change)
            break
        cpu_problem = check_cpu_cut_covers_peak(ctx, change) if cpu else None
        memory_problem = check_memory_cut_covers_peak(ctx, change) if memory else None
        if cpu_problem is None and memory_problem is None:
            headroom = []
            if cpu:
                headroom.append(f"CPU peak over {_hours(ctx.observations.peak_window_seconds)} covered")
            if memory:
                headroom.append("memory peak covered")
            headroom.extend(notes)  # why the other resource stays
            yield RuleOutcome(name, change=replace(change, reason=f"{change.reason} ({'; '.join(headroom)})"))
            return
        if cpu_problem is not None:
            notes.append(f"CPU stays: {cpu_problem}")
            if isinstance(ctx.observations.peak_cpu_usage_millicores_total, Unknown):
                blocked.append("peak_cpu_usage_millicores_total")
            blocked.extend(find_spike_signals_missing(ctx.observations))
            cpu = False
        if memory_problem is not None:
            notes.append(f"memory stays: {memory_problem}")
            if isinstance(ctx.observations.peak_memory_working_set_bytes_per_pod, Unknown):
                blocked.append("peak_memory_working_set_bytes_per_pod")
            memory = False
    yield RuleOutcome(name, note="over-provisioned, but " + "; ".join(notes), blocked_by=tuple(blocked))


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
        yield RuleOutcome(name, note="pool signals unknown", blocked_by=_unknown_names(
            {"pool_server_active": observations.pool_server_active, "pool_client_waiting": waiting}))
        return
    thresholds = ctx.thresholds
    if utilisation.maximum >= thresholds.pool_shrink_utilisation_percent or waiting.maximum > 0:
        return
    if not ctx.covers(utilisation, observations.window_seconds):
        yield RuleOutcome(name, note="pool under 50%, but the window is not yet covered")
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
    span = _hours(observations.peak_window_seconds)
    if isinstance(long_peak, Unknown):
        yield RuleOutcome(name, note=f"pool under 50%, but the demand peak over {span} is unknown "
                                     f"({long_peak.reason}): no shrink",
                          blocked_by=("peak_pool_demand_connections",))
        return
    per_pooler_peak = max(demand.maximum, long_peak) / max(1, pool.pooler_replicas)
    projected = 100 * per_pooler_peak / new_default
    if projected >= thresholds.pool_warning_utilisation_percent:
        yield RuleOutcome(name, note=f"pool under 50% but the {span} demand peak would be {projected:.0f}% of "
                                     f"{new_default} (>= {thresholds.pool_warning_utilisation_percent:.0f}% warning)")
        return
    # A shrink never raises the reserve (a tier's reserve ratio can be higher than the live one's), so the
    # server connections never grow and a pool within maxServerConnections stays within it.
    reserve = min(guardrails.compute_pool_reserve(new_default), pool.reserve_pool_size)
    size = PoolSize(default_pool_size=new_default, reserve_pool_size=reserve)
    yield RuleOutcome(name, change=_pool_change(
        ctx, pool, size, table_row=row,
        reason=(f"Pool utilisation peak {utilisation.maximum:.0f}% < {thresholds.pool_shrink_utilisation_percent:.0f}% "
                f"(target) all window, no waiting: pool row {row}: {live_default}/{pool.reserve_pool_size} -> "
                f"{size.default_pool_size}/{size.reserve_pool_size} ({span} demand peak would be {projected:.0f}%)"),
    ))


RULES: tuple[Rule, ...] = (
    decide_slo_emergency,
    decide_pool_waiting,
    decide_under_provisioning,
    decide_spike_headroom,
    decide_hpa_targets,
    decide_behaviour,
    decide_over_provisioning,
    decide_pool_shrink,
)
