"""Pod size and maxReplicas: under-provisioning (CPU- or memory-bound, or saturated at maxReplicas), the
spike-headroom rule (pods at the floor too small for the week's spikes), and over-provisioned cuts."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from perfpilot.api.spec import Objective
from perfpilot.api.status import ContainerResources, Setting, TuningState
from perfpilot.tuning import guardrails
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.observations import Series, Unknown
from perfpilot.tuning.rules.behaviour import compute_scale_up_row, is_slo_breached_while_scaling_up
from perfpilot.tuning.rules.changes import build_behaviour_change, build_max_replicas_change
from perfpilot.tuning.rules.context import RuleContext, RuleOutcome, check_history_for_a_cut, format_hours, format_ms
from perfpilot.tuning.rules.resize import compute_resource_change, select_cpu_containers
from perfpilot.tuning.rules.shortage import compute_saturation
from perfpilot.tuning.rules.spikes import (
    check_cut_pods_carry_the_largest_rise,
    compute_spike_need,
    find_spike_signals_missing,
)
from perfpilot.tuning.tables import RESOURCE_ROWS, SCALE_UP_ROWS
from perfpilot.tuning.values import format_container_prefix


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
            ctx, row=row, cpu=cpu_bound and select_cpu_containers(provisioning, saturated=saturated_now is not None),
            memory=provisioning.memory_containers, why=why,
        )
        yield RuleOutcome(name, change=change) if isinstance(change, ProposedChange) else RuleOutcome(name, note=change)
        if cpu_bound and provisioning.memory_bound and isinstance(change, ProposedChange):
            # Should the CPU move be held (the reversal hold), the memory alone still goes: the containers out of
            # it are OOMKilled, or about to be, and must not wait a day for the CPU.
            memory_only = compute_resource_change(
                ctx, row=RESOURCE_ROWS["MemoryBound"], cpu=False, memory=provisioning.memory_containers,
                why=f"{why}; the memory alone, the CPU move held",
            )
            if isinstance(memory_only, ProposedChange):
                yield RuleOutcome(name, change=memory_only)
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
    why = saturated or f"SLO breached (p95 {format_ms(latency.mean)} > {format_ms(ctx.slo_seconds)}) at maxReplicas"
    if ctx.profile.hpa.max_replicas_ceiling > hpa.max_replicas:
        change = build_max_replicas_change(ctx, hpa, why=why, emergency=False)
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
    spike check fails).

    Under objective Reliability the pods are grown before a breach, on the spike check alone: the need is
    then a forecast, capped at the peak window's peak rate, and only a shortfall of more than
    ``spike_ahead_shortfall_fraction`` counts. Balanced waits for the breach: sized ahead when tried under
    Balanced, a right-sized service paid up to 2.4x static's CPU for its last few violation minutes
    (docs/benchmarks.md)."""
    name = "spike headroom"
    hpa = ctx.tuned_hpa
    if hpa is None or hpa.cpu_target_percent is None:
        return
    latency, replicas = ctx.observations.latency_p95_seconds, ctx.observations.replicas
    if isinstance(latency, Unknown) or isinstance(replicas, Unknown):
        return  # the behaviour rule says which is missing
    settled = compute_last_resize_settled(ctx.state)
    # Only a breach since the last resize was judged says the pods are still too small; an older one was
    # answered already, or came from the resize's own rollout. A resize not judged yet counts from its write,
    # and a sample whose rate window reaches back before the write still holds the breach it answered:
    # counted, it grew the pods a second time for one spike. (After a verdict the window is skipped too, which
    # loses at most one rate window of samples.)
    after = settled.timestamp() + ctx.observations.rate_window_seconds if settled is not None else -math.inf
    breached = is_slo_breached_while_scaling_up(latency, replicas, ctx.slo_seconds, after_seconds=after)
    ahead = not breached and ctx.profile.objective is Objective.RELIABILITY
    if not breached and not ahead:
        return
    aggressive = SCALE_UP_ROWS["Aggressive"]
    if build_behaviour_change(ctx, hpa, scale_up=True, row=aggressive, reason="") is not None:
        if breached:
            yield RuleOutcome(name, note="SLO breached while scaling up: the Aggressive scale-up row comes first")
        return
    if ahead and compute_scale_up_row(ctx)[0] != aggressive:
        # The behaviour rule is about to leave the Aggressive row (the rises no longer call for it): sized
        # for spikes the fleet is no longer scaled up for, the pods would be grown for nothing.
        return
    pod = ctx.observations.live.cpu_request_millicores_per_pod
    if not pod:
        return
    missing = find_spike_signals_missing(ctx.observations)
    week_peak = ctx.observations.peak_request_rate_per_second
    if ahead and isinstance(week_peak, Unknown):
        missing = (*missing, "peak_request_rate_per_second")
    if missing:
        why = "SLO breached while scaling up" if breached else "objective Reliability sizes the pods for spikes"
        yield RuleOutcome(name, note=f"{why}, but {', '.join(missing)} unknown", blocked_by=missing)
        return
    ceiling = week_peak if ahead and not isinstance(week_peak, Unknown) else None
    need = compute_spike_need(ctx.observations, pods=max(1, hpa.min_replicas), ceiling_rate_per_second=ceiling)
    carried = need.pods * pod
    if breached:
        head = f"SLO {format_ms(ctx.slo_seconds)} breached while scaling up with the Aggressive scale-up row live"
        enough = need.needed_millicores
    else:
        shortfall = ctx.thresholds.spike_ahead_shortfall_fraction
        head = (f"objective Reliability: pods sized for spikes before they come (the Aggressive scale-up row live, "
                f"a shortfall over {shortfall:.0%} counted)")
        enough = need.needed_millicores * (1 - shortfall)
    usual_pods = math.ceil(need.usual_millicores / (pod * hpa.cpu_target_percent / 100))
    if usual_pods > need.pods:
        # Above minReplicas the HPA sizes the fleet to the target: bigger pods mean fewer of them, not more
        # headroom; only the minReplicas floor gains from bigger pods.
        yield RuleOutcome(name, note=f"{head}; the usual load needs {usual_pods} pods > minReplicas {need.pods}: "
                                     f"the CPU target, not the pod size, sets the headroom there")
        return
    if carried >= enough:
        carries = "carry a spike" if carried >= need.needed_millicores else (
            f"are within {ctx.thresholds.spike_ahead_shortfall_fraction:.0%} of what a spike needs")
        yield RuleOutcome(name, note=f"{head}; minReplicas {need.pods} x {pod}m = {carried}m {carries} "
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


def _compute_pod_request_after(
    change: ProposedChange, *, live_pod: int | None, request: Callable[[ContainerResources], int | None]
) -> int:
    """The pod's total request once a resources change is written: the live total, the changed containers'
    requests swapped for their new ones (containers the profile does not select keep theirs)."""
    def total(containers: object) -> int:
        return sum(request(c) or 0 for c in containers) if isinstance(containers, list) else 0

    return (live_pod or 0) - total(change.edit.from_value) + total(change.edit.to_value)


def check_cpu_cut_covers_peak(ctx: RuleContext, change: ProposedChange) -> str | None:
    """None when the cut pods still carry the peak window's total CPU with headroom, else why not.

    Capacity is maxReplicas x the new pod request x the CPU target the HPA will have (the coupled one), or,
    without a CPU-target HPA, the largest replica count of the window x the new pod request.
    """
    observations = ctx.observations
    peak = observations.peak_cpu_usage_millicores_total
    span = format_hours(observations.peak_window_seconds)
    if isinstance(peak, Unknown):
        return f"CPU peak over {span} unknown ({peak.reason}): no CPU cut"
    new_pod = _compute_pod_request_after(change, live_pod=observations.live.cpu_request_millicores_per_pod,
                                         request=lambda container: container.cpu_request_millicores)
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
class MemoryCutProblem:
    """Containers whose memory cut would not hold their peak of the peak window, and why."""

    containers: tuple[str, ...]
    problem: str
    unknown: tuple[str, ...] = ()  # the peak signal, when it is what is unknown


def find_memory_cut_problems(ctx: RuleContext, change: ProposedChange) -> list[MemoryCutProblem]:
    """The containers whose memory request the change cuts that would no longer hold their own largest
    working set of the peak window with headroom (none: the cut is safe)."""
    observations = ctx.observations
    span = format_hours(observations.peak_window_seconds)
    hpa = ctx.tuned_hpa or observations.live.hpa
    fraction = ctx.thresholds.memory_bound_request_fraction
    if hpa is not None and hpa.memory_target_percent is not None:
        fraction = min(fraction, hpa.memory_target_percent / 100)
    multiple = ctx.thresholds.peak_memory_headroom_multiple
    before, after = change.edit.from_value, change.edit.to_value
    assert isinstance(before, list) and isinstance(after, list)
    named = len(before) > 1
    problems: list[MemoryCutProblem] = []
    for old, new in zip(before, after, strict=True):
        old_bytes, new_bytes = old.memory_request_bytes, new.memory_request_bytes
        if not old_bytes or not new_bytes or new_bytes >= old_bytes:
            continue
        signal_name, peak = observations.find_container_peak_working_set(new.name)
        label = format_container_prefix(new.name, named=named)
        if isinstance(peak, Unknown):
            problems.append(MemoryCutProblem(
                (new.name,), f"{label}memory peak over {span} unknown ({peak.reason}): no memory cut", (signal_name,)))
        elif new_bytes * fraction < multiple * peak:
            problems.append(MemoryCutProblem(
                (new.name,), f"{label}{new_bytes / 2**20:.0f}Mi x {fraction:.0%} would not hold {multiple:g} x the "
                          f"{span} working-set peak {peak / 2**20:.0f}Mi"))
    if problems:
        return problems  # the pod is checked once the containers that cannot be cut are left out
    pod_problem = _find_pod_memory_cut_problem(ctx, change, span=span)
    return [pod_problem] if pod_problem is not None else []


def _find_pod_memory_cut_problem(ctx: RuleContext, change: ProposedChange, *, span: str) -> MemoryCutProblem | None:
    """With a memory-target HPA, the pod's total after the cut must still hold the pod's peak under the target:
    the HPA compares pod totals, and a sidecar's cut could push them over it (more replicas would not bring the
    utilisation down). A pod of one container is checked as that container (find_memory_cut_problems)."""
    observations = ctx.observations
    hpa = ctx.tuned_hpa or observations.live.hpa
    if hpa is None or hpa.memory_target_percent is None or len(observations.live.containers) < 2:
        return None
    before, after = change.edit.from_value, change.edit.to_value
    assert isinstance(before, list) and isinstance(after, list)
    cut = tuple(new.name for old, new in zip(before, after, strict=True)
                if (new.memory_request_bytes or 0) < (old.memory_request_bytes or 0))
    if not cut:
        return None
    peak = observations.peak_memory_working_set_bytes_per_pod
    if isinstance(peak, Unknown):
        return MemoryCutProblem(cut, f"the pod's memory peak over {span} unknown ({peak.reason}): no memory cut",
                                ("peak_memory_working_set_bytes_per_pod",))
    new_pod = _compute_pod_request_after(change, live_pod=observations.live.memory_request_bytes_per_pod,
                                         request=lambda container: container.memory_request_bytes)
    multiple = ctx.thresholds.peak_memory_headroom_multiple
    target = hpa.memory_target_percent / 100
    if new_pod * target < multiple * peak:
        return MemoryCutProblem(cut, f"the pod's {new_pod / 2**20:.0f}Mi x the memory target {target:.0%} would not "
                                     f"hold {multiple:g} x its {span} working-set peak {peak / 2**20:.0f}Mi")
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
    held = check_history_for_a_cut(ctx, rule=name, finding="over-provisioned")
    if held is not None:
        yield held
        return
    row = RESOURCE_ROWS["Over"]
    cpu = provisioning.cpu_over
    notes: list[str] = []
    room = ctx.thresholds.cpu_cut_latency_room_fraction * ctx.slo_seconds
    if cpu and isinstance(latency, Series) and latency.maximum > room:
        notes.append(f"CPU stays: p95 {format_ms(latency.maximum)} in the window > "
                     f"{ctx.thresholds.cpu_cut_latency_room_fraction:.0%} of the SLO: smaller pods would slow "
                     f"every request with no room left under it")
        cpu = False
    # The containers whose memory is cut: one whose cut would not hold its own peak is dropped, the rest go on.
    # A CPU cut is checked on the pod's totals (the HPA's and the spikes' view), so it stands or falls whole.
    memory_containers = list(provisioning.memory_containers) if provisioning.memory_over else []
    blocked: list[str] = []
    while cpu or memory_containers:
        memory = bool(memory_containers)
        change = compute_resource_change(
            ctx, row=row, cpu=cpu and provisioning.cpu_containers, memory=tuple(memory_containers),
            why=f"{row.label} ({provisioning.evidence})",
        )
        if not isinstance(change, ProposedChange):
            notes.append(change)
            break
        cpu_problem = check_cpu_cut_covers_peak(ctx, change) if cpu else None
        memory_problems = find_memory_cut_problems(ctx, change) if memory else []
        if cpu_problem is None and not memory_problems:
            headroom = []
            if cpu:
                headroom.append(f"CPU peak over {format_hours(ctx.observations.peak_window_seconds)} covered")
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
        for found in memory_problems:
            notes.append(f"memory stays: {found.problem}")
            blocked.extend(found.unknown)
            memory_containers = [name for name in memory_containers if name not in found.containers]
    yield RuleOutcome(name, note="over-provisioned, but " + "; ".join(notes), blocked_by=tuple(blocked))
