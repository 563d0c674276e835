"""One function per rule, in DESIGN's order of precedence (``RULES`` at the end).

Each rule names the signals it needs and yields candidate changes, most wanted first; a rule whose
signals are unknown yields an outcome with ``blocked_by`` instead. Rules apply bounds and step limits
themselves (through ``guardrails``); cooldown, verification and barred moves are the engine's job,
because they are about *when*, not *what*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from perfpilot.api.spec import (
    LimitsPolicy,
    Objective,
    PerformanceProfileSpec,
    ScaleDownSpeed,
    ScaleUpSpeed,
)
from perfpilot.api.status import ContainerResources, Edit, PoolSize, Setting
from perfpilot.tuning import guardrails, signals
from perfpilot.tuning.classify import ClassificationDetail
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.observations import HpaLive, Observations, PoolLive, Series, Signal, Unknown
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
        return new
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
    new_target = guardrails.compute_coupled_cpu_target(
        live_target_percent=hpa.cpu_target_percent, old_request_millicores=old_pod, new_request_millicores=new_pod,
        lower=bounds.min, upper=bounds.max, max_step_points=ctx.profile.guardrails.max_target_step,
    )
    if new_target == hpa.cpu_target_percent:
        return None, "; CPU target stays (coupled value clamped to its bounds/step)"
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
    new_default = min(goal, spec.size.max, step_limit)
    new_default = max(new_default, spec.size.min)
    if new_default <= live_default:
        return f"pool {live_default} already at size.max {spec.size.max} or the step limit"
    limits = []
    if new_default < goal:
        limits.append("size.max" if new_default == spec.size.max else "step limit")
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


# --- rules, in order of precedence ---------------------------------------------------------------------


def decide_slo_emergency(ctx: RuleContext) -> Iterator[RuleOutcome]:
    """p95 above twice the SLO: the one case that may act at once, and only toward more capacity."""
    name = "SLO emergency"
    latency = ctx.recent(ctx.observations.latency_p95_seconds, ctx.thresholds.emergency_latency_span_seconds)
    if isinstance(latency, Unknown):
        yield RuleOutcome(name, note="p95 unknown", blocked_by=("latency_p95_seconds",))
        return
    limit = ctx.thresholds.emergency_latency_multiple * ctx.slo_seconds
    if latency.minimum <= limit:
        yield RuleOutcome(name, note=f"no emergency (p95 {_ms(latency.latest)} <= 2 x SLO {_ms(ctx.slo_seconds)})")
        return
    why = (f"SLO emergency (p95 {_ms(latency.minimum)}+ > {ctx.thresholds.emergency_latency_multiple:g} x SLO "
           f"{_ms(ctx.slo_seconds)} for {ctx.thresholds.emergency_latency_span_seconds:.0f}s)")
    hpa = ctx.tuned_hpa
    at_max = hpa is not None and hpa.current_replicas >= hpa.max_replicas
    if hpa is not None and at_max:
        change = _max_replicas_change(ctx, hpa, why=why, emergency=True)
        yield RuleOutcome(name, change=change) if isinstance(change, ProposedChange) else RuleOutcome(name, note=change)
    provisioning = ctx.detail.provisioning
    if provisioning.cpu_bound or provisioning.memory_bound:
        row = RESOURCE_ROWS[provisioning.label]
        change_or_note = compute_resource_change(
            ctx, row=row, cpu=provisioning.cpu_bound, memory=provisioning.memory_bound,
            why=f"{why}, {provisioning.evidence}", emergency=True,
        )
        if isinstance(change_or_note, ProposedChange):
            yield RuleOutcome(name, change=change_or_note)
        else:
            yield RuleOutcome(name, note=change_or_note)
    if hpa is not None and hpa.cpu_target_percent is not None and not at_max:
        bounds = ctx.profile.hpa.cpu_target
        step = ctx.profile.guardrails.max_target_step
        new = guardrails.compute_target_step(
            live_percent=hpa.cpu_target_percent, goal_percent=hpa.cpu_target_percent - step,
            lower=bounds.min, upper=hpa.cpu_target_percent, max_step_points=step,
        )
        if new < hpa.cpu_target_percent:
            yield RuleOutcome(name, change=_target_change(
                ctx, setting=Setting.HPA_CPU_TARGET, live_percent=hpa.cpu_target_percent, new_percent=new,
                reason=f"{why}: CPU target {hpa.cpu_target_percent}% -> {new}% (down {step} points toward "
                       f"cpuTarget.min {bounds.min}%) for more replicas",
                table_row="latency feedback", emergency=True,
            ))
    if hpa is not None and ctx.profile.hpa.scale_up is ScaleUpSpeed.AUTO:
        faster = _behaviour_change(
            ctx, hpa, scale_up=True, row=SCALE_UP_ROWS["Aggressive"], emergency=True,
            reason=f"{why}: scale-up row 'Aggressive' (window 0s, +100% per 15s)",
        )
        if faster is not None and guardrails.is_toward_capacity(faster):
            yield RuleOutcome(name, change=faster)
    yield RuleOutcome(name, note=f"{why}, but no capacity move is left within the bounds")


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
    else:
        yield RuleOutcome(name, note=f"no sustained pool waiting (waiting in {waiting_fraction:.0%}, "
                                     f"> {thresholds.pool_grow_utilisation_percent:.0f}% in {busy_fraction:.0%})")
        return
    grown = compute_pool_grow(ctx, pool)
    if isinstance(grown, str):
        yield RuleOutcome(name, note=f"{why}; {grown}")
        return
    size, row = grown
    yield RuleOutcome(name, change=_pool_change(
        ctx, pool, size, emergency=emergency, table_row=row,
        reason=f"{why}: pool row {row}: {pool.default_pool_size}/{pool.reserve_pool_size} -> "
               f"{size.default_pool_size}/{size.reserve_pool_size}",
    ))


def decide_under_provisioning(ctx: RuleContext) -> Iterator[RuleOutcome]:
    """Containers bound on CPU or memory get the resources row; a saturated HPA gets more maxReplicas."""
    name = "under-provisioning"
    provisioning = ctx.detail.provisioning
    if provisioning.label == "Unknown":
        yield RuleOutcome(name, note="provisioning unknown", blocked_by=provisioning.blocked_by)
    elif provisioning.cpu_bound or provisioning.memory_bound:
        row = RESOURCE_ROWS[provisioning.label]
        change = compute_resource_change(
            ctx, row=row, cpu=provisioning.cpu_bound, memory=provisioning.memory_bound,
            why=f"{row.label} ({provisioning.evidence})",
        )
        yield RuleOutcome(name, change=change) if isinstance(change, ProposedChange) else RuleOutcome(name, note=change)
    hpa = ctx.tuned_hpa
    if hpa is None or hpa.current_replicas < hpa.max_replicas or ctx.profile.hpa.max_replicas_ceiling <= 0:
        return
    latency = ctx.recent(ctx.observations.latency_p95_seconds, ctx.thresholds.recent_span_seconds)
    if isinstance(latency, Unknown):
        yield RuleOutcome(name, note="p95 unknown", blocked_by=("latency_p95_seconds",))
        return
    if latency.mean > ctx.slo_seconds:
        why = f"SLO breached (p95 {_ms(latency.mean)} > {_ms(ctx.slo_seconds)}) at maxReplicas"
        change = _max_replicas_change(ctx, hpa, why=why, emergency=False)
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
    assert isinstance(recent_latency, Series) and isinstance(recent_cpu, Series)  # non-empty: latest included
    if recent_latency.mean > ctx.slo_seconds and recent_cpu.mean < live:
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
        relax = ctx.thresholds.relax_latency_fraction * ctx.slo_seconds
        if latency.maximum >= relax or not ctx.covers(latency, ctx.observations.window_seconds):
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


def _slo_breached_while_scaling_up(latency: Series, replicas: Series, slo_seconds: float) -> bool:
    latency_at = dict(zip(latency.timestamps_seconds, latency.values, strict=True))
    previous = replicas.values[0]
    for time, count in zip(replicas.timestamps_seconds[1:], replicas.values[1:], strict=True):
        if count > previous and latency_at.get(time, 0.0) > slo_seconds:
            return True
        previous = count
    return False


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
    if rise >= thresholds.flash_crowd_multiple:
        return SCALE_UP_ROWS["Aggressive"], (
            f"flash crowd (request rate x{rise:.1f} within {thresholds.flash_crowd_span_seconds:.0f}s "
            f">= x{thresholds.flash_crowd_multiple:g})")
    if _slo_breached_while_scaling_up(latency, replicas, ctx.slo_seconds):
        return SCALE_UP_ROWS["Aggressive"], f"SLO {_ms(ctx.slo_seconds)} breached while scaling up"
    if ctx.profile.objective is Objective.COST:
        load = ctx.detail.load
        if load.label == "Unknown":
            return None, load.blocked_by
        if load.label == "Steady":
            return SCALE_UP_ROWS["Conservative"], f"objective Cost with steady load ({load.evidence})"
    return SCALE_UP_ROWS["Moderate"], "no flash crowd, no SLO breach while scaling up"


def compute_scale_down_row(ctx: RuleContext) -> tuple[BehaviourRow, str] | tuple[None, tuple[str, ...]]:
    pinned = ctx.profile.hpa.scale_down
    if pinned is not ScaleDownSpeed.AUTO:
        return SCALE_DOWN_ROWS[pinned.value], f"scaleDown pinned to {pinned.value}"
    replicas = ctx.observations.replicas
    load = ctx.detail.load
    if not isinstance(replicas, Series) or load.label == "Unknown":
        return None, _unknown_names({"replicas": replicas}) + load.blocked_by
    reversals = signals.compute_direction_reversals(replicas.values)
    flapping = reversals >= ctx.thresholds.flapping_reversals
    if flapping:
        return SCALE_DOWN_ROWS["Slow"], (f"replica count flapping ({reversals} reversals >= "
                                         f"{ctx.thresholds.flapping_reversals})")
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


def decide_over_provisioning(ctx: RuleContext) -> Iterator[RuleOutcome]:
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
    change = compute_resource_change(
        ctx, row=row, cpu=provisioning.cpu_over, memory=provisioning.memory_over,
        why=f"{row.label} ({provisioning.evidence})",
    )
    yield RuleOutcome(name, change=change) if isinstance(change, ProposedChange) else RuleOutcome(name, note=change)


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
    per_pooler_peak = demand.maximum / max(1, pool.pooler_replicas)
    projected = 100 * per_pooler_peak / new_default
    if projected >= thresholds.pool_warning_utilisation_percent:
        yield RuleOutcome(name, note=f"pool under 50% but the peak would be {projected:.0f}% of {new_default} "
                                     f"(>= {thresholds.pool_warning_utilisation_percent:.0f}% warning)")
        return
    # A shrink never raises the reserve (a tier's reserve ratio can be higher than the live one's), so the
    # server connections never grow and a pool within maxServerConnections stays within it.
    reserve = min(guardrails.compute_pool_reserve(new_default), pool.reserve_pool_size)
    size = PoolSize(default_pool_size=new_default, reserve_pool_size=reserve)
    yield RuleOutcome(name, change=_pool_change(
        ctx, pool, size, table_row=row,
        reason=(f"Pool utilisation peak {utilisation.maximum:.0f}% < {thresholds.pool_shrink_utilisation_percent:.0f}% "
                f"(target) all window, no waiting: pool row {row}: {live_default}/{pool.reserve_pool_size} -> "
                f"{size.default_pool_size}/{size.reserve_pool_size} (peak would be {projected:.0f}%)"),
    ))


RULES: tuple[Rule, ...] = (
    decide_slo_emergency,
    decide_pool_waiting,
    decide_under_provisioning,
    decide_hpa_targets,
    decide_behaviour,
    decide_over_provisioning,
    decide_pool_shrink,
)
