"""``decide()``: at most one change per evaluation, or why nothing changes (DESIGN section 3, step 3).

Order: mode and pause; the verdict on a pending change (a rollback is this evaluation's change); then
the rules in precedence order, skipping barred moves, and while a change is being verified or the
cooldown runs, taking only an emergency move toward more capacity.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from perfpilot.api.spec import Mode, PerformanceProfileSpec
from perfpilot.api.status import ChangeRecord, Edit, Setting, TuningState, Verdict
from perfpilot.tuning import guardrails
from perfpilot.tuning.classify import compute_classification_detail
from perfpilot.tuning.decision import Decision, ProposedChange
from perfpilot.tuning.observations import Observations, Series, Unknown
from perfpilot.tuning.rules import RULES, RuleContext, compute_shortage
from perfpilot.tuning.thresholds import DEFAULT_THRESHOLDS, Thresholds
from perfpilot.tuning.verify import compute_baseline, decide_verdict


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

    Not an emergency or a rollback, not more CPU (the capacity it adds is what is short), and not while
    containers are OOMKilled or the largest working set nears the memory limit: those pods are out, or about
    to be, and more memory is what keeps them in.
    """
    if (change.edit.setting is not Setting.RESOURCES or change.emergency or change.rollback
            or guardrails.raises_pod_cpu(change.edit)):
        return False
    live = observations.live
    if isinstance(live.oom_kills_in_window, int) and live.oom_kills_in_window > 0:
        return False
    working_set = observations.memory_working_set_bytes_per_pod
    limits = [c.memory_limit_bytes for c in live.containers]
    if isinstance(working_set, Series) and limits and all(limit is not None for limit in limits):
        memory_limit = sum(limit for limit in limits if limit is not None)
        if working_set.maximum >= thresholds.memory_bound_request_fraction * memory_limit:
            return False
    return True


def rollout_waits_for_room(observations: Observations) -> bool:
    """Whether the HPA sits at maxReplicas, where the pods a rollout takes out cannot be replaced."""
    hpa = observations.live.hpa
    return hpa is not None and hpa.current_replicas >= hpa.max_replicas


def rollout_waits_for_off_peak(observations: Observations, *, thresholds: Thresholds) -> str:
    """Why a rollout should wait for the traffic to come off its peak ("" when it need not).

    A rollout takes maxUnavailable pods out; at the busy hour, with the HPA holding the others near its
    target, what they must carry instead pushes p95 over the SLO.
    """
    rate, peak = observations.request_rate_per_second, observations.peak_request_rate_per_second
    if isinstance(rate, Unknown) or isinstance(peak, Unknown) or peak <= 0:
        return ""
    recent = rate.since(observations.at.timestamp() - thresholds.recent_span_seconds)
    now_rate = recent.mean if isinstance(recent, Series) else rate.latest
    if now_rate <= thresholds.rollout_busy_rate_fraction * peak:
        return ""
    return (f"request rate {now_rate:.1f}/s > {thresholds.rollout_busy_rate_fraction:.0%} of the "
            f"{observations.peak_window_seconds / 3600:g}h peak {peak:.1f}/s: a rollout now would take pods out at "
            f"the busy hour")


def _may_reverse(change: ProposedChange, edit: Edit, record: ChangeRecord, context: RuleContext) -> bool:
    """A reversal within the hold is allowed for an emergency toward capacity, toward capacity in a shortage, or
    to return a coupled edit once its change was judged (it was never a move of its own: the target was
    lowered only to keep the replica count through a request raise)."""
    if (record.edit.setting is not edit.setting and record.coupled is not None
            and record.coupled.setting is edit.setting
            and record.verdict in (Verdict.KEPT, Verdict.INCONCLUSIVE)):
        return True
    replicas = guardrails.compute_replica_counts(context.observations.live.hpa)
    if guardrails.compute_edit_direction(edit, replicas=replicas) <= 0:
        return False
    if change.emergency and guardrails.is_toward_capacity(change, replicas=replicas):
        return True
    return compute_shortage(context) is not None


def decide(
    profile: PerformanceProfileSpec,
    observations: Observations,
    state: TuningState,
    now: datetime,
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Decision:
    detail = compute_classification_detail(profile, observations, thresholds=thresholds)
    classification = detail.summary
    if profile.mode is Mode.OFF:
        return Decision(None, "Off: perfpilot neither recommends nor writes", False, classification)
    if observations.live.paused:
        return Decision(None, "Paused: perfpilot.io/paused is set; nothing is written", False, classification)
    may_apply = profile.mode is Mode.AUTO
    guard = profile.guardrails

    verdict: Verdict | None = None
    verdict_reason = ""
    hold_until: datetime | None = None
    hold_why = ""
    last = state.last_change
    if last is not None and last.verdict is Verdict.PENDING:
        verify_end = last.at + timedelta(seconds=guard.verify_for.seconds)
        if now < verify_end:
            hold_until, hold_why = verify_end, f"verifying {last.edit.setting.value} change until {verify_end:%H:%M:%S}"
        else:
            judged = decide_verdict(profile, observations, last, now=now, thresholds=thresholds)
            if (judged.rollback is not None and judged.rollback.edit.setting is Setting.RESOURCES
                    and observations.live.rollout_in_progress):
                # Never stack a rollout on a rollout: the verdict stays Pending and the rollback is retried.
                return Decision(None, f"Rollback due ({judged.reason}), waiting for the rollout in progress",
                                False, classification)
            if judged.rollback is not None:
                return Decision(
                    change=judged.rollback,
                    reason=judged.rollback.reason,
                    apply=may_apply,
                    classification=classification,
                    verdict=judged.verdict,
                    verdict_reason=judged.reason,
                    barred_until=now + timedelta(seconds=thresholds.barred_cooldowns * guard.cooldown.seconds),
                )
            verdict, verdict_reason = judged.verdict, judged.reason
    cooldown_end = guardrails.compute_cooldown_end(state, profile)
    if cooldown_end is not None and now < cooldown_end and (hold_until is None or cooldown_end > hold_until):
        hold_until, hold_why = cooldown_end, f"cooldown until {cooldown_end:%H:%M:%S}"

    emergency_from = compute_emergency_start(state, profile, thresholds=thresholds)
    hold_seconds = max(thresholds.reversal_hold_seconds, guard.cooldown.seconds)
    context = RuleContext(
        profile=profile, observations=observations, detail=detail, thresholds=thresholds,
        now_seconds=observations.at.timestamp(), state=state,
    )
    replica_counts = guardrails.compute_replica_counts(observations.live.hpa)
    shortage = compute_shortage(context)
    blocked: list[str] = []
    notes: list[str] = []
    held: ProposedChange | None = None
    for rule in RULES:
        for outcome in rule(context):
            blocked.extend(outcome.blocked_by)
            change = outcome.change
            if change is None:
                if outcome.note:
                    notes.append(f"{outcome.rule}: {outcome.note}")
                continue
            if guardrails.is_barred(change, barred=state.barred, now=now):
                notes.append(f"{outcome.rule}: move {change.edit.setting.value} -> barred after a rollback")
                continue
            if shortage is not None and guardrails.reduces_capacity(change, replicas=replica_counts):
                # A move that is right on average (a slower scale-up row, a cut) is wrong while short of capacity.
                notes.append(f"{outcome.rule}: would reduce capacity while short of it ({shortage})")
                continue
            if change.edit.setting is Setting.RESOURCES and observations.live.rollout_in_progress:
                notes.append(f"{outcome.rule}: resources change waits for the rollout in progress")
                held = held or change
                continue
            may_wait = resources_change_may_wait(change, observations, thresholds=thresholds)
            if may_wait and rollout_waits_for_room(observations):
                # A rollout takes pods out (maxUnavailable) that an HPA at maxReplicas cannot replace; one that
                # gives the pods no more CPU buys nothing for that dip, so it waits for the HPA to come down.
                notes.append(f"{outcome.rule}: resources change without more CPU waits until the HPA is below "
                             f"maxReplicas (a rollout takes pods out)")
                held = held or change
                continue
            busy = rollout_waits_for_off_peak(observations, thresholds=thresholds) if may_wait else ""
            if busy:
                notes.append(f"{outcome.rule}: resources change waits for off-peak ({busy})")
                held = held or change
                continue
            reversal = guardrails.find_reversal(
                change, state=state, now=now, hold_seconds=hold_seconds, replicas=replica_counts)
            if reversal is not None and not _may_reverse(change, *reversal, context):
                edit, record = reversal
                notes.append(f"{outcome.rule}: {edit.setting.value} was moved the other way at "
                             f"{record.at:%Y-%m-%d %H:%M} (held {hold_seconds / 3600:g}h against flapping)")
                continue
            if change.emergency and emergency_from is not None and now < emergency_from:
                notes.append(f"{outcome.rule}: emergency waits until {emergency_from:%H:%M:%S} for the last change "
                             f"to show ({thresholds.emergency_after_change_intervals} intervals)")
                held = held or change
                continue
            if hold_until is not None and not (
                    change.emergency and guardrails.is_toward_capacity(change, replicas=replica_counts)):
                held = held or change
                continue
            reason = change.reason
            if hold_until is not None:
                reason = f"{reason} [emergency toward capacity during {hold_why}]"
            return Decision(
                change=change,
                reason=reason,
                apply=may_apply,
                classification=classification,
                verdict=verdict,
                verdict_reason=verdict_reason,
                blocked_by=_dedupe(blocked),
                cooldown_until_seconds=hold_until.timestamp() if hold_until is not None else None,
                baseline=compute_baseline(observations, span_seconds=guard.verify_for.seconds),
            )
    if hold_until is not None:
        reason = f"Holding: {hold_why}" + (f"; next: {held.reason}" if held is not None else "; nothing due")
    else:
        reason = "No change: " + ("; ".join(notes) if notes else "nothing to tune")
    if verdict is not None:
        reason = f"Verdict {verdict.value} ({verdict_reason}). {reason}"
    return Decision(
        change=None,
        reason=reason,
        apply=False,
        classification=classification,
        verdict=verdict,
        verdict_reason=verdict_reason,
        blocked_by=_dedupe(blocked),
        cooldown_until_seconds=hold_until.timestamp() if hold_until is not None else None,
    )
