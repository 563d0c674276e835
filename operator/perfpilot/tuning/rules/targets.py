"""The HPA utilisation targets: the CPU and memory target rows, and latency feedback on the CPU target."""

from __future__ import annotations

from collections.abc import Iterator

from perfpilot.api.spec import Objective
from perfpilot.api.status import Setting, TuningState, Verdict
from perfpilot.tuning import guardrails, signals
from perfpilot.tuning.observations import HpaLive, Unknown
from perfpilot.tuning.rules.changes import build_target_change
from perfpilot.tuning.rules.context import RuleContext, RuleOutcome, find_unknown_names, format_ms
from perfpilot.tuning.rules.pool import compute_pool_growth_for_breach
from perfpilot.tuning.tables import CPU_TARGET_ROWS, MEMORY_TARGET_ROWS, TargetRow


def _describe_step_limit(goal: int, new: int, *, max_step_points: int) -> str:
    return f", step limited to {max_step_points} points" if goal != new else ""


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


def compute_lowered_cpu_target(ctx: RuleContext, *, live_percent: int) -> int:
    """Latency feedback's step (the emergency's too): one ``maxTargetStep`` down toward ``cpuTarget.min``, never
    up (a live target under the bounds stays where it is)."""
    step = ctx.profile.guardrails.max_target_step_points
    return guardrails.compute_target_step(live_percent=live_percent, goal_percent=live_percent - step,
                                          lower=ctx.profile.hpa.cpu_target.min, upper=live_percent,
                                          max_step_points=step)


def _decide_cpu_target(ctx: RuleContext, hpa: HpaLive) -> Iterator[RuleOutcome]:
    name = "HPA CPU target"
    live = hpa.cpu_target_percent
    if live is None:
        return
    bounds = ctx.profile.hpa.cpu_target
    step = ctx.profile.guardrails.max_target_step_points
    latency = ctx.observations.latency_p95_seconds
    cpu = signals.compute_cpu_utilisation_percent(ctx.observations)
    blocked = find_unknown_names({"latency_p95_seconds": latency, "cpu_usage_millicores_per_pod": cpu})
    if isinstance(latency, Unknown) or isinstance(cpu, Unknown):
        yield RuleOutcome(name, note="p95 or CPU unknown", blocked_by=blocked)
        return
    recent_latency = ctx.recent(latency, ctx.thresholds.recent_span_seconds)
    recent_cpu = ctx.recent(cpu, ctx.thresholds.recent_span_seconds)
    if isinstance(recent_latency, Unknown) or isinstance(recent_cpu, Unknown):
        # A coarse reader step can leave a series known over the window yet without a sample this recent:
        # only latency feedback needs one; the table row below reads the whole window.
        yield RuleOutcome(name, note=f"no p95 or CPU sample in the last "
                                     f"{ctx.thresholds.recent_span_seconds / 60:g} minutes: no latency feedback")
    elif recent_latency.mean > ctx.slo_seconds and recent_cpu.mean < live:
        pool_growth = compute_pool_growth_for_breach(ctx, ctx.thresholds.recent_span_seconds)
        if pool_growth is not None:
            yield RuleOutcome(name, note=f"latency feedback: p95 {format_ms(recent_latency.mean)} > SLO with "
                                         f"{pool_growth.evidence}: the pool grows first, not the CPU target")
            return
        new = compute_lowered_cpu_target(ctx, live_percent=live)
        if new < live:
            yield RuleOutcome(name, change=build_target_change(
                ctx, setting=Setting.HPA_CPU_TARGET, live_percent=live, new_percent=new, table_row="latency feedback",
                reason=f"Latency feedback: p95 {format_ms(recent_latency.mean)} > SLO {format_ms(ctx.slo_seconds)} "
                       f"with CPU {recent_cpu.mean:.0f}% below its target {live}%: CPU target {live}% -> {new}% "
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
                                             f"window (p95 peak {format_ms(latency.maximum)})")
                return
            new = min(new, origin)
            head += (f", coupled with the last request raise (from {origin}%); SLO met all window (p95 peak "
                     f"{format_ms(latency.maximum)})")
        else:
            relax = ctx.thresholds.relax_latency_fraction * ctx.slo_seconds
            if latency.maximum >= relax or not covered:
                yield RuleOutcome(name, note=f"{head}: raising needs p95 under {format_ms(relax)} "
                                             f"({ctx.thresholds.relax_latency_fraction:.0%} of SLO) all window "
                                             f"(peak {format_ms(latency.maximum)})")
                return
            head += f", p95 peak {format_ms(latency.maximum)} < {ctx.thresholds.relax_latency_fraction:.0%} of SLO"
    yield RuleOutcome(name, change=build_target_change(
        ctx, setting=Setting.HPA_CPU_TARGET, live_percent=live, new_percent=new, table_row=row.label,
        reason=f"{head} -> {new}%{_describe_step_limit(goal, new, max_step_points=step)}",
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
    step = ctx.profile.guardrails.max_target_step_points
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
                                         f"(peak {format_ms(latency.maximum)})")
            return
    yield RuleOutcome(name, change=build_target_change(
        ctx, setting=Setting.HPA_MEMORY_TARGET, live_percent=live, new_percent=new, table_row=row.label,
        reason=f"{head} -> {new}%{_describe_step_limit(goal, new, max_step_points=step)}",
    ))
