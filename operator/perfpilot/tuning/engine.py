"""``decide()``: at most one change per evaluation, or why nothing changes (DESIGN section 3, step 3).

Order: mode and pause; the verdict on a pending change (a rollback is this evaluation's change); then
the rules in precedence order, skipping barred moves, and while a change is being verified, the
cooldown runs or a due rollback waits for a rollout, taking only an emergency move toward more capacity.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from perfpilot.api.spec import Mode, PerformanceProfileSpec
from perfpilot.api.status import ContainerResources, Edit, PoolSize, Setting, TuningState, Verdict
from perfpilot.tuning import guardrails, signals
from perfpilot.tuning.classify import compute_classification_detail
from perfpilot.tuning.decision import Decision, ProposedChange
from perfpilot.tuning.observations import HpaLive, LiveConfig, Observations, Series, Unknown
from perfpilot.tuning.rules import RULES, RuleContext, compute_shortage, find_coupled_target_origin
from perfpilot.tuning.state import compute_judged_state
from perfpilot.tuning.thresholds import DEFAULT_THRESHOLDS, Thresholds
from perfpilot.tuning.values import compute_live_value, values_equal
from perfpilot.tuning.verify import (
    VerdictOutcome,
    compute_baseline,
    compute_in_effect_at,
    compute_verdict_span,
    decide_emergency_rollback,
    decide_unfinished_write,
    decide_unserved_pool,
    decide_verdict,
)


def _dedupe(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def compute_emergency_start(
    state: TuningState, profile: PerformanceProfileSpec, *, thresholds: Thresholds
) -> datetime | None:
    """The earliest an emergency may follow the last write: its effect must be visible first."""
    written_at = guardrails.compute_last_write(state)
    if written_at is None:
        return None
    visible_seconds = thresholds.emergency_after_change_intervals * profile.guardrails.interval.seconds
    return written_at + timedelta(seconds=visible_seconds)


def resources_change_may_wait(change: ProposedChange, observations: Observations, *, thresholds: Thresholds) -> bool:
    """Whether a resources change can wait for a better moment to roll out.

    Not an emergency, not more CPU (the capacity it adds is what is short), and not while containers are
    OOMKilled or the largest working set of the window nears the memory limit: those pods are out, or about to
    be, and more memory is what keeps them in. An unknown OOM count does not let a memory raise wait either:
    the kills it may hide are what the raise is for. (A rollback does not come through the rules.)
    """
    if change.edit.setting is not Setting.RESOURCES or change.emergency or guardrails.raises_pod_cpu(change.edit):
        return False
    live = observations.live
    oom = live.oom_kills_in_window
    if (isinstance(oom, int) and oom > 0) or (isinstance(oom, Unknown) and guardrails.raises_pod_memory(change.edit)):
        return False
    # The pod's total near the pods' limits means one container is near its own: read where a container's
    # own series is missing.
    working_set_bytes = observations.memory_working_set_bytes_per_pod
    limit_bytes = live.memory_limit_bytes_per_pod
    pod_near_limit = (isinstance(working_set_bytes, Series) and limit_bytes is not None
                      and working_set_bytes.maximum >= thresholds.memory_near_limit_fraction * limit_bytes)
    return not pod_near_limit and not any(
        _is_near_memory_limit(observations, container, thresholds=thresholds) for container in live.containers)


def _is_near_memory_limit(observations: Observations, container: ContainerResources, *,
                          thresholds: Thresholds) -> bool:
    """Whether the container's largest working set of the window nears its own memory limit (the OOM killer
    acts per container)."""
    limit_bytes = container.memory_limit_bytes
    _, working_set = observations.find_container_working_set(container.name)
    return (isinstance(working_set, Series) and limit_bytes is not None
            and working_set.maximum >= thresholds.memory_near_limit_fraction * limit_bytes)


def is_hpa_at_max_replicas(hpa: HpaLive | None) -> bool:
    """Whether the HPA sits at maxReplicas, where the pods a rollout takes out cannot be replaced."""
    return hpa is not None and hpa.current_replicas >= hpa.max_replicas


class BusyHour(NamedTuple):
    """Why a rollout now would come at the busy hour; ``latency``: because p95 has no room under the SLO (not
    only because the rate is near the week's peak)."""

    reason: str
    latency: bool


def check_rollout_at_busy_hour(context: RuleContext) -> BusyHour | None:
    """Why a rollout now would come at the busy hour, or None.

    A rollout takes maxUnavailable pods out; above minReplicas the HPA holds the others near its target, so
    what they must carry instead pushes p95 over the SLO when it has no room left: at the busy hour (the
    request rate near the peak window's peak), or whenever p95 is already near the SLO (a day below a bigger
    day of the week is still this one's peak). At the floor the pods are under the target and cover the gap.
    Unknown signals do not make it the busy hour. (How long a change waits for off-peak is ``decide``'s: a
    change toward capacity at most rollout_peak_wait_max_seconds from when the wait began, a cut held by the
    latency half for as long as that lasts.)
    """
    observations, thresholds = context.observations, context.thresholds
    hpa = observations.live.hpa
    if hpa is None or hpa.current_replicas <= hpa.min_replicas:
        return None
    latency = context.recent(observations.latency_p95_seconds, thresholds.recent_span_seconds)
    near_slo_seconds = thresholds.rollout_latency_room_fraction * context.slo_seconds
    if isinstance(latency, Series) and latency.maximum > near_slo_seconds:
        return BusyHour(f"p95 {latency.maximum * 1000:.0f}ms in the last {thresholds.recent_span_seconds / 60:g} "
                        f"minutes > {thresholds.rollout_latency_room_fraction:.0%} of the SLO with the HPA above "
                        f"minReplicas: the pods a rollout takes out now would push it over", latency=True)
    rate = context.recent(observations.request_rate_per_second, thresholds.recent_span_seconds)
    peak = observations.peak_request_rate_per_second
    if isinstance(rate, Unknown) or isinstance(peak, Unknown) or peak <= 0:
        return None
    if rate.mean <= thresholds.rollout_busy_rate_fraction * peak:
        return None
    return BusyHour(f"request rate {rate.mean:.1f}/s > {thresholds.rollout_busy_rate_fraction:.0%} of the "
                    f"{observations.peak_window_seconds / 3600:g}h peak {peak:.1f}/s with the HPA above "
                    f"minReplicas: a rollout now would take pods out at the busy hour", latency=False)


def _may_reverse(change: ProposedChange, reversal: guardrails.Reversal, context: RuleContext) -> bool:
    """A reversal within the hold is allowed for an emergency toward capacity, toward capacity in a shortage, a
    container's memory raised while it is OOMKilled (a cut it outgrew must not crash-loop it for the hold), or
    to return a coupled CPU target once its request raise was judged, no further than where it came from (it
    was never a move of its own: it was lowered only to keep the replica count through the raise)."""
    edit, record = reversal.edit, reversal.record
    coupled = record.coupled
    if (coupled is not None and coupled.setting is edit.setting is Setting.HPA_CPU_TARGET
            and record.edit.setting is not edit.setting and isinstance(edit.from_value, int)
            and isinstance(edit.to_value, int) and isinstance(coupled.from_value, int)
            and find_coupled_target_origin(context.state, live_percent=edit.from_value) == coupled.from_value
            and edit.to_value <= coupled.from_value):
        return True
    replicas = guardrails.compute_replica_counts(context.observations.live.hpa)
    if guardrails.compute_edit_direction(edit, replicas=replicas) <= 0:
        return False
    if change.emergency and guardrails.is_toward_capacity(change, replicas=replicas):
        return True
    if reversal.move is not None and reversal.move[1] == "memory" and _is_oom_killed(
            reversal.move[0], context.observations.live):
        return True
    return compute_shortage(context) is not None


def _is_oom_killed(container: str, live: LiveConfig) -> bool:
    """Whether the container was OOMKilled in the window (any container, when only the pod's count is known)."""
    oom = live.oom_kills_in_window
    if not isinstance(oom, int) or oom == 0:
        return False
    killed = live.oom_kills_by_container
    return killed is None or killed.get(container, 0) > 0


def _adds_capacity(change: ProposedChange, *, replicas: tuple[int, ...]) -> bool:
    """Whether every edit of the change (the coupled one included) moves toward more capacity; a slower
    scale-down counts, unlike for an emergency (which only a faster scale-up may be)."""
    return all(guardrails.compute_edit_direction(edit, replicas=replicas) > 0 for edit in guardrails.list_edits(change))


def _rolls_out(change: ProposedChange, *, profile: PerformanceProfileSpec, live: LiveConfig) -> bool:
    """Whether writing ``change`` starts a rollout: it sets requests other than the live ones (a rollback of a
    change cut short before its resources write only writes the HPA back)."""
    if change.edit.setting is not Setting.RESOURCES:
        return False
    live_value = compute_live_value(Setting.RESOURCES, profile=profile, live=live)
    return not values_equal(Setting.RESOURCES, live_value, change.edit.to_value)


def _undo_pending_cut(
    context: RuleContext, *, emergency: ProposedChange, now: datetime, replicas: tuple[int, ...]
) -> VerdictOutcome | None:
    """RolledBack for the pending change when it took capacity away and an SLO emergency came before its
    verdict, or None. Undoing it is the emergency's first move: it restores values that held before, where the
    emergency's own move would leave the likely cause in place and its verdict lost ("superseded").

    Only a pure cut (every edit toward less) whose undo is a move an emergency may make: a resources undo must
    give the pods more CPU (a memory cut's undo is a rollout that adds none, which at maxReplicas takes out
    pods that cannot be replaced), and it is a rollback like any (the pool budget, rollback on)."""
    state, profile, observations = context.state, context.profile, context.observations
    last = state.last_change
    if last is None or last.verdict is not Verdict.PENDING:
        return None
    directions = [guardrails.compute_edit_direction(edit, replicas=replicas) for edit in guardrails.list_edits(last)]
    if max(directions) > 0 or min(directions) >= 0:
        return None  # only a pure cut is undone toward capacity; a mixed move would take some away again
    if last.edit.setting is Setting.RESOURCES and not guardrails.raises_pod_cpu(
            Edit(setting=last.edit.setting, from_value=last.edit.to_value, to_value=last.edit.from_value)):
        return None
    if last.edit.setting is Setting.POOL_SIZE and isinstance(last.edit.to_value, PoolSize):
        served = signals.compute_pool_served(observations, size=last.edit.to_value.default_pool_size)
        if not isinstance(served, Unknown) and not served.by_some_pod:
            return None  # a cut no pooler pod serves: undoing it gives nothing back, and would delay the emergency
    return decide_emergency_rollback(
        profile, observations, last, now=now, thresholds=context.thresholds,
        cause=f"an SLO emergency came during its verification ({emergency.reason}); the cut is undone first",
    )


def _barred_until(now: datetime, *, state: TuningState, profile: PerformanceProfileSpec,
                  thresholds: Thresholds) -> datetime:
    """Until when the last change's move, rolled back or found reverted now, is barred: 6 x cooldown (DESIGN),
    doubled for each earlier time the history shows the same move undone (ours: a move that keeps failing is
    tried ever less often, not every 6 x cooldown for good), at most guardrails.peakWindow (a week on, the
    workload may have changed)."""
    last = state.last_change
    assert last is not None
    undone = (Verdict.ROLLED_BACK, Verdict.REVERTED)
    repeats = sum(1 for record in state.history
                  if record.verdict in undone and record.edit.setting is last.edit.setting
                  and values_equal(record.edit.setting, record.edit.to_value, last.edit.to_value))
    base = thresholds.barred_cooldowns * profile.guardrails.cooldown.seconds
    longest = max(base, profile.guardrails.peak_window.seconds)
    return now + timedelta(seconds=min(base * 2 ** min(repeats, 32), longest))


@dataclass(frozen=True)
class _Pending:
    """What the pending change leaves for this evaluation: its verdict, a rollback to write now, or a hold."""

    state: TuningState
    verdict: Verdict | None = None
    verdict_reason: str = ""
    barred_until: datetime | None = None
    rollback: VerdictOutcome | None = None  # written now, before any rule runs
    hold_until: datetime | None = None
    hold_why: str = ""
    rollback_waits: str = ""  # a rollback due that waits for a rollout in progress


def _judge_pending_change(
    profile: PerformanceProfileSpec, observations: Observations, state: TuningState, *, now: datetime,
    thresholds: Thresholds,
) -> _Pending:
    last = state.last_change
    if last is None or last.verdict is not Verdict.PENDING:
        return _Pending(state)
    guard = profile.guardrails
    _, verify_end = compute_verdict_span(last, profile=profile, rate_window_seconds=observations.rate_window_seconds,
                                         thresholds=thresholds,
                                         in_effect_at=compute_in_effect_at(last, observations=observations))
    # A write that did not finish is seen at once, not after verifyFor: a change recorded before its write whose
    # values never arrived, or arrived half (its coupled edit alone).
    unfinished = decide_unfinished_write(profile, observations, last, now=now, thresholds=thresholds)
    if unfinished is None:
        # A pool size written but not served by every pooler pod: not yet in effect where it matters.
        unserved = decide_unserved_pool(profile, observations, last, now=now, thresholds=thresholds)
        if isinstance(unserved, str):
            return _Pending(state, hold_until=verify_end, hold_why=unserved)
        unfinished = unserved
    if unfinished is None and now < verify_end:
        return _Pending(state, hold_until=verify_end,
                        hold_why=f"verifying {last.edit.setting.value} change until {verify_end:%H:%M:%S}")
    judged = unfinished or decide_verdict(profile, observations, last, now=now, thresholds=thresholds)
    # A rollout still running a verifyFor after the rollback fell due is stuck (the change's own new pods
    # OOMKilled, say): the rollback's template supersedes it, as `kubectl rollout undo` would.
    rollout_stuck_at = verify_end + timedelta(seconds=guard.verify_for.seconds)
    if (judged.rollback is not None and _rolls_out(judged.rollback, profile=profile, live=observations.live)
            and observations.live.rollout_in_progress and now < rollout_stuck_at):
        # Otherwise no rollout is stacked on a rollout: the verdict stays Pending and the rollback is retried.
        # Meanwhile only an emergency toward capacity may act: a stuck rollout must not silence it.
        return _Pending(state, rollback_waits=f"rollback due ({judged.reason}), waiting for the rollout in progress "
                                              f"until {rollout_stuck_at:%H:%M:%S} at most")
    if judged.rollback is not None:
        return _Pending(state, rollback=judged)
    if judged.verdict is not Verdict.REVERTED:
        return _Pending(state, verdict=judged.verdict, verdict_reason=judged.reason)
    # Nothing was written now: the rules go on as after the change, with its move barred already.
    barred_until = _barred_until(now, state=state, profile=profile, thresholds=thresholds)
    state = compute_judged_state(state, verdict=Verdict.REVERTED, reason=judged.reason, now=now,
                                 barred_until=barred_until)
    return _Pending(state, verdict=judged.verdict, verdict_reason=judged.reason, barred_until=barred_until)


@dataclass(frozen=True)
class _Gate:
    """What every proposed change of one evaluation is checked against before it may go."""

    context: RuleContext
    now: datetime
    replicas: tuple[int, ...]
    shortage: str | None
    holds: tuple[str, ...]  # the pending change's verification, the cooldown, a rollback waiting for a rollout
    emergency_from: datetime | None


@dataclass(frozen=True)
class _Gated:
    """A proposed change after the checks: it goes, or why not (``note``), and whether it is held (it goes
    later: named while holding, and kept ahead of a lower rule's move away from capacity)."""

    goes: bool = False
    note: str = ""
    held: bool = False
    waits_for_off_peak: bool = False  # the busy hour makes it wait (the state keeps when the wait began)


def _describe_pool_unserved(observations: Observations) -> str | None:
    """Why the pool's configured size is not what pgBouncer serves (every pooler pod, by the exporter), or None
    when it is, or the exporter does not say."""
    pool = observations.live.pool
    if pool is None:
        return None
    served = signals.compute_pool_served(observations, size=pool.default_pool_size)
    if isinstance(served, Unknown) or served.since_seconds is not None:
        return None
    return (f"the pool is configured at size {pool.default_pool_size} but {served.describe()}: nothing has "
            f"reloaded it (spec.pool.pgbouncer.adminSecretRef, a reload sidecar), so a new size would not be "
            f"served either")


def _gate_change(change: ProposedChange, *, rule: str, gate: _Gate, held: ProposedChange | None) -> _Gated:
    """Whether ``change`` (proposed by ``rule``) goes now, in the order of the guardrails that may stop it."""
    context, now, replicas = gate.context, gate.now, gate.replicas
    state, observations, thresholds = context.state, context.observations, context.thresholds
    barred_edit = guardrails.find_barred_edit(change, barred=state.barred, now=now)
    if barred_edit is not None:
        return _Gated(note=f"{rule}: move {barred_edit.setting.value} -> {barred_edit.to_value} is barred (rolled "
                           f"back or found reverted)")
    if held is not None and _adds_capacity(held, replicas=replicas) and not _adds_capacity(change, replicas=replicas):
        # A move toward capacity that waits (for a rollout, maxReplicas, off-peak) goes before a lower rule's move
        # that is not: written first, that one's verification would hold it longer still.
        return _Gated(note=f"{rule}: waits for the move toward capacity held above it ({held.table_row})")
    if gate.shortage is not None and guardrails.reduces_capacity(change, replicas=replicas):
        # A move that is right on average (a slower scale-up row, a cut) is wrong while short of capacity.
        return _Gated(note=f"{rule}: would reduce capacity while short of it ({gate.shortage})")
    held_by = observations.live.template_held_by
    if change.edit.setting is Setting.RESOURCES and held_by and context.profile.mode is Mode.AUTO:
        # The template would change and no pod with it: the verdict would judge pods that never got the values,
        # and a raise that did nothing would be raised again. (Recommend shows it: whoever rolls the pods by
        # hand is the one to act on it.)
        return _Gated(note=f"{rule}: resources change not made: {held_by} (perfpilot neither deletes pods nor "
                           f"changes how a workload rolls out)")
    unserved = _describe_pool_unserved(observations) if change.edit.setting is Setting.POOL_SIZE else None
    if unserved is not None and context.profile.mode is Mode.AUTO:
        # A new size would be written where nothing serves it, and its verification would judge the old pool.
        return _Gated(note=f"{rule}: pool change not made: {unserved}")
    may_wait = resources_change_may_wait(change, observations, thresholds=thresholds)
    busy = check_rollout_at_busy_hour(context) if may_wait else None
    # The state keeps when the wait began for as long as the busy hour lasts, also when the change is held for
    # another reason (a rollout, maxReplicas, a cooldown) or its wait is over: a moment at maxReplicas does not
    # start the wait again.
    waits = busy is not None
    if (change.edit.setting is Setting.RESOURCES and observations.live.rollout_in_progress
            and not (change.emergency and guardrails.is_toward_capacity(change, replicas=replicas))):
        # An emergency toward capacity goes ahead: a new template supersedes a rollout that is stuck (its new pods
        # OOMKilled, say), which waiting would leave stuck.
        return _Gated(note=f"{rule}: resources change waits for the rollout in progress", held=True,
                      waits_for_off_peak=waits)
    if may_wait and is_hpa_at_max_replicas(observations.live.hpa):
        # A rollout takes pods out (maxUnavailable) that an HPA at maxReplicas cannot replace; one that gives the
        # pods no more CPU buys nothing for that dip, so it waits for the HPA to come down.
        return _Gated(note=f"{rule}: resources change without more CPU waits until the HPA is below maxReplicas (a "
                           f"rollout takes pods out)", held=True, waits_for_off_peak=waits)
    if busy is not None:
        if busy.latency and guardrails.reduces_capacity(change, replicas=replicas):
            # A cut is never urgent: on a service whose p95 always sits near the SLO it waits for room rather than
            # roll out onto it at whatever hour a day's wait ends. (A rate near the week's peak all day is no
            # reason to wait for good: such a workload has no quieter hour.)
            return _Gated(note=f"{rule}: a cut waits for off-peak ({busy.reason}) for as long as that lasts",
                          held=True, waits_for_off_peak=True)
        until = (state.off_peak_wait_since or now) + timedelta(seconds=thresholds.rollout_peak_wait_max_seconds)
        if now < until:
            return _Gated(note=f"{rule}: resources change waits for off-peak ({busy.reason}; waits until "
                               f"{until:%Y-%m-%d %H:%M} at most)", held=True, waits_for_off_peak=True)
    hold_seconds = thresholds.reversal_hold_seconds
    reversal = guardrails.find_reversal(change, state=state, now=now, hold_seconds=hold_seconds, replicas=replicas,
                                        allowed=functools.partial(_may_reverse, change, context=context))
    if reversal is not None:
        moved = reversal.edit.setting.value + (
            f" ({reversal.move[0]} {reversal.move[1]})" if reversal.move is not None else "")
        return _Gated(note=f"{rule}: {moved} was moved the other way at {reversal.record.at:%Y-%m-%d %H:%M} (held "
                           f"{hold_seconds / 3600:g}h against flapping)", waits_for_off_peak=waits)
    if change.emergency and gate.emergency_from is not None and now < gate.emergency_from:
        return _Gated(note=f"{rule}: emergency waits until {gate.emergency_from:%H:%M:%S} for the last change to "
                           f"show ({thresholds.emergency_after_change_intervals} intervals)", held=True,
                      waits_for_off_peak=waits)
    if gate.holds and not (change.emergency and guardrails.is_toward_capacity(change, replicas=replicas)):
        return _Gated(held=True, waits_for_off_peak=waits)
    return _Gated(goes=True, waits_for_off_peak=waits)


def decide(
    profile: PerformanceProfileSpec,
    observations: Observations,
    state: TuningState,
    now: datetime,
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Decision:
    """DESIGN section 3: at most one change, with its reason and table row, or why nothing changes. The
    pending change is judged first (a rollback due is written before any rule runs); then the rules, in order
    of precedence, propose changes, and the first that no guardrail stops is the decision."""
    detail = compute_classification_detail(profile, observations, thresholds=thresholds, state=state)
    classification = detail.summary
    if profile.mode is Mode.OFF:
        return Decision(None, "Off: perfpilot neither recommends nor writes", False, classification)
    if observations.live.paused:
        return Decision(None, "Paused: perfpilot.io/paused is set; nothing is written", False, classification)
    may_apply = profile.mode is Mode.AUTO

    pending = _judge_pending_change(profile, observations, state, now=now, thresholds=thresholds)
    if pending.rollback is not None:
        rollback = pending.rollback.rollback
        assert rollback is not None
        return Decision(
            change=rollback, reason=rollback.reason, apply=may_apply, classification=classification,
            verdict=pending.rollback.verdict, verdict_reason=pending.rollback.reason,
            barred_until=_barred_until(now, state=state, profile=profile, thresholds=thresholds), rollback_due=True,
            # The rules did not run: a wait for off-peak under way is neither over nor begun again.
            waits_for_off_peak=state.off_peak_wait_since is not None,
        )
    state = pending.state
    hold_until, hold_why = pending.hold_until, pending.hold_why
    cooldown_end = guardrails.compute_cooldown_end(state, profile)
    if cooldown_end is not None and now < cooldown_end and (hold_until is None or cooldown_end > hold_until):
        hold_until, hold_why = cooldown_end, f"cooldown until {cooldown_end:%H:%M:%S}"
    holds = tuple(why for why in (hold_why if hold_until is not None else "", pending.rollback_waits) if why)
    context = RuleContext(
        profile=profile, observations=observations, detail=detail, thresholds=thresholds,
        now_seconds=observations.at.timestamp(), state=state,
    )
    gate = _Gate(context=context, now=now, replicas=guardrails.compute_replica_counts(observations.live.hpa),
                 shortage=compute_shortage(context), holds=holds,
                 emergency_from=compute_emergency_start(state, profile, thresholds=thresholds))
    blocked: list[str] = []
    notes: list[str] = []
    held: ProposedChange | None = None
    waits_for_off_peak = False
    for rule in RULES:
        for outcome in rule(context):
            blocked.extend(outcome.blocked_by)
            change = outcome.change
            if change is None:
                if outcome.note:
                    notes.append(f"{outcome.rule}: {outcome.note}")
                continue
            gated = _gate_change(change, rule=outcome.rule, gate=gate, held=held)
            waits_for_off_peak = waits_for_off_peak or gated.waits_for_off_peak
            if gated.note:
                notes.append(gated.note)
            if gated.held:
                held = held or change
            if not gated.goes:
                continue
            if change.emergency and pending.verdict is None:
                undo = _undo_pending_cut(context, emergency=change, now=now, replicas=gate.replicas)
                if undo is not None and undo.rollback is not None:
                    return Decision(
                        change=undo.rollback, reason=undo.rollback.reason, apply=may_apply,
                        classification=classification, verdict=undo.verdict, verdict_reason=undo.reason,
                        blocked_by=_dedupe(blocked),
                        barred_until=_barred_until(now, state=state, profile=profile, thresholds=thresholds),
                        rollback_due=True, waits_for_off_peak=waits_for_off_peak,
                    )
            reason = change.reason
            if holds:
                reason = f"{reason} [emergency toward capacity during {'; '.join(holds)}]"
            if change.edit.setting is Setting.RESOURCES and observations.live.template_held_by:
                reason = f"{reason} [{observations.live.template_held_by}; in Auto this change would not be made]"
            return Decision(
                change=change,
                reason=reason,
                apply=may_apply,
                classification=classification,
                verdict=pending.verdict,
                verdict_reason=pending.verdict_reason,
                blocked_by=_dedupe(blocked),
                cooldown_until_seconds=hold_until.timestamp() if hold_until is not None else None,
                baseline=compute_baseline(observations, span_seconds=profile.guardrails.verify_for.seconds,
                                          not_before=guardrails.compute_last_write(state), thresholds=thresholds),
                barred_until=pending.barred_until,
                waits_for_off_peak=waits_for_off_peak,
                rollback_due=bool(pending.rollback_waits),
            )
    if holds:
        reason = f"Holding: {'; '.join(holds)}" + (f"; next: {held.reason}" if held is not None else "; nothing due")
    else:
        reason = "No change: " + ("; ".join(notes) if notes else "nothing to tune")
    if pending.verdict is not None:
        reason = f"Verdict {pending.verdict.value} ({pending.verdict_reason}). {reason}"
    return Decision(
        change=None,
        reason=reason,
        apply=False,
        classification=classification,
        verdict=pending.verdict,
        verdict_reason=pending.verdict_reason,
        blocked_by=_dedupe(blocked),
        cooldown_until_seconds=hold_until.timestamp() if hold_until is not None else None,
        barred_until=pending.barred_until,
        waits_for_off_peak=waits_for_off_peak,
        rollback_due=bool(pending.rollback_waits),
    )
