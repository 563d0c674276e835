"""The SLO emergency (DESIGN section 5): the one rule that may act at once, and only toward more capacity."""

from __future__ import annotations

from collections.abc import Iterator

from perfpilot.api.spec import ScaleUpSpeed
from perfpilot.api.status import Setting
from perfpilot.tuning import guardrails
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.observations import Unknown
from perfpilot.tuning.rules.behaviour import describe_row
from perfpilot.tuning.rules.changes import build_behaviour_change, build_max_replicas_change, build_target_change
from perfpilot.tuning.rules.context import RuleContext, RuleOutcome, format_ms
from perfpilot.tuning.rules.pool import build_pool_growth_change, compute_pool_growth_for_breach
from perfpilot.tuning.rules.resize import compute_resource_change, select_cpu_containers
from perfpilot.tuning.rules.shortage import compute_saturation
from perfpilot.tuning.rules.targets import compute_lowered_cpu_target
from perfpilot.tuning.tables import RESOURCE_ROWS, SCALE_UP_ROWS


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
        # Every sample of the span must be above: the lowest one says why this is no emergency.
        yield RuleOutcome(name, note=f"no emergency (p95 down to {format_ms(latency.minimum)} <= "
                                     f"{ctx.thresholds.emergency_latency_multiple:g} x SLO "
                                     f"{format_ms(ctx.slo_seconds)} in the last {span:.0f}s)")
        return
    why = (f"SLO emergency (p95 {format_ms(latency.minimum)}+ > {ctx.thresholds.emergency_latency_multiple:g} x SLO "
           f"{format_ms(ctx.slo_seconds)} for {ctx.thresholds.emergency_latency_span_seconds:.0f}s)")
    hpa = ctx.tuned_hpa
    at_max = hpa is not None and hpa.current_replicas >= hpa.max_replicas
    pool_growth = compute_pool_growth_for_breach(ctx, span)
    if pool_growth is not None:
        # 0. Requests queue for a database connection: the pool is the cheapest capacity, and a CPU target
        # lowered during its backlog would go on costing CPU once the pool is grown.
        grow = build_pool_growth_change(ctx, pool_growth, why=f"{why}, {pool_growth.evidence}", emergency=True)
        yield RuleOutcome(name, change=grow)
        yield RuleOutcome(name, note=f"{why}: no lower CPU target while {pool_growth.evidence}")
    # 1. Below maxReplicas the HPA can add pods: a lower CPU target is the cheapest move (no restart).
    if pool_growth is None and hpa is not None and hpa.cpu_target_percent is not None and not at_max:
        bounds = ctx.profile.hpa.cpu_target
        step = ctx.profile.guardrails.max_target_step_points
        new = compute_lowered_cpu_target(ctx, live_percent=hpa.cpu_target_percent)
        if new < hpa.cpu_target_percent:
            yield RuleOutcome(name, change=build_target_change(
                ctx, setting=Setting.HPA_CPU_TARGET, live_percent=hpa.cpu_target_percent, new_percent=new,
                reason=f"{why}: HPA at {hpa.current_replicas} < maxReplicas {hpa.max_replicas}: CPU target "
                       f"{hpa.cpu_target_percent}% -> {new}% (down {step} points toward cpuTarget.min "
                       f"{bounds.min}%) for more replicas",
                table_row="latency feedback", emergency=True,
            ))
    # 2. At maxReplicas: more replicas, within maxReplicasCeiling.
    if hpa is not None and at_max:
        change = build_max_replicas_change(ctx, hpa, why=why, emergency=True)
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
            ctx, row=row, cpu=cpu_bound and select_cpu_containers(provisioning, saturated=saturated),
            memory=provisioning.memory_containers, why=f"{why}, {evidence}{where}", emergency=True,
        )
        if isinstance(change_or_note, ProposedChange):
            yield RuleOutcome(name, change=change_or_note)
        else:
            yield RuleOutcome(name, note=change_or_note)
    elif provisioning.cpu_bound and hpa is not None:
        yield RuleOutcome(name, note=f"CPU-bound but the HPA at {hpa.current_replicas} < maxReplicas "
                                     f"{hpa.max_replicas} can still add pods: no CPU raise")
    if hpa is not None and ctx.profile.hpa.scale_up is ScaleUpSpeed.AUTO:
        faster = build_behaviour_change(
            ctx, hpa, scale_up=True, row=SCALE_UP_ROWS["Aggressive"], emergency=True,
            reason=f"{why}: scale-up row 'Aggressive' ({describe_row(SCALE_UP_ROWS['Aggressive'], scale_up=True)})",
        )
        # Toward capacity only if it never allows fewer replicas per period, at the live count and at
        # minReplicas: +100%/15s alone is slower than Kubernetes' default Max(+4 pods, +100%) below 4 pods.
        if faster is not None and guardrails.is_toward_capacity(
                faster, replicas=guardrails.compute_replica_counts(hpa)):
            yield RuleOutcome(name, change=faster)
    yield RuleOutcome(name, note=f"{why}, but no capacity move is left within the bounds")
