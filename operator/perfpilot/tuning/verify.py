"""The verdict on a pending change (DESIGN section 3, step 5) and the rollback it may call for."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from perfpilot.api.quantities import Duration
from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import Baseline, ChangeRecord, Edit, PoolSize, Setting, Verdict
from perfpilot.tuning import signals
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.guardrails import (
    compute_edit_direction,
    compute_replica_counts,
    find_bounds_left,
    fits_server_budget,
)
from perfpilot.tuning.observations import LiveConfig, Observations, Series, Signal, Unknown
from perfpilot.tuning.thresholds import DEFAULT_THRESHOLDS, Thresholds
from perfpilot.tuning.values import compute_live_value, compute_target_name, values_equal


@dataclass(frozen=True)
class VerdictOutcome:
    verdict: Verdict
    reason: str
    rollback: ProposedChange | None = None


def _mean_since(signal: Signal, start_seconds: float, *, observations: Observations, thresholds: Thresholds
                ) -> float | None:
    """The mean of ``signal`` from ``start_seconds`` to the evaluation; None when it is unknown or its samples
    fill under ``min_sample_share_of_span`` of the steps the observations can hold over that span."""
    if isinstance(signal, Unknown):
        return None
    recent = signal.since(start_seconds)
    if not isinstance(recent, Series):
        return None
    at_seconds = observations.at.timestamp()
    # The span as far back as the observations reach: a verifyFor longer than the window is read over the window.
    span_seconds = at_seconds - max(start_seconds, at_seconds - observations.window_seconds)
    if not signals.fills_share_of_steps(recent, span_seconds=span_seconds, step_seconds=observations.step_seconds,
                                        share=thresholds.min_sample_share_of_span):
        return None
    return recent.mean


def _exceeds(value: float, limit: float) -> bool:
    """``value > limit`` where the two differ by more than float noise: DESIGN's "more than" thresholds
    (0.5 points, 30%, 10%) must not trip on a value exactly at them (0.025 - 0.02 is 0.005000000000000001)."""
    return value > limit and not math.isclose(value, limit, rel_tol=1e-9, abs_tol=1e-12)


def compute_baseline(
    observations: Observations, *, span_seconds: float, not_before: datetime | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Baseline:
    """Means of p95, error ratio and request rate over the last ``span_seconds`` before a change, from no
    earlier than one rate window after ``not_before`` (the last write: what came before it is another
    configuration's, such as the one a rollback just undid, and would make a worse "before" that hides this
    change's regression; a sample whose rate window reaches back past the write still averages it). A mean
    of too few samples is None (unknown), as after the change: an emergency less than a rate window after a
    write (two intervals of under a minute each) has no "before", and its verdict is Inconclusive (kept)."""
    start = observations.at.timestamp() - span_seconds
    if not_before is not None:
        start = max(start, not_before.timestamp() + observations.rate_window_seconds)
    return Baseline(
        p95_latency_seconds=_mean_since(observations.latency_p95_seconds, start, observations=observations,
                                        thresholds=thresholds),
        error_ratio=_mean_since(observations.error_ratio, start, observations=observations, thresholds=thresholds),
        request_rate_per_second=_mean_since(observations.request_rate_per_second, start,
                                            observations=observations, thresholds=thresholds),
    )


def compute_verdict_span(
    change: ChangeRecord, *, profile: PerformanceProfileSpec, rate_window_seconds: float, thresholds: Thresholds,
    in_effect_at: datetime | None = None,
) -> tuple[datetime, datetime]:
    """When a change's "after" starts and when its verdict is due.

    After starts once the rollout has settled (the first third of ``verifyFor``) and once a sample's rate
    window lies wholly after the write; it lasts the rest of ``verifyFor``. With the defaults (15 minutes, a
    2-minute rate window) the verdict is due ``verifyFor`` after the change; a ``verifyFor`` under three rate
    windows moves it later, so that its after-span is never empty (which would keep every change). Both count
    from ``in_effect_at`` when it is given (``compute_in_effect_at``: a pool size pgBouncer served only later).
    """
    verify_seconds = profile.guardrails.verify_for.seconds
    settle_seconds = verify_seconds * thresholds.verify_settle_fraction
    start_seconds = max(settle_seconds, rate_window_seconds)
    began = change.at if in_effect_at is None else max(change.at, in_effect_at)
    return (began + timedelta(seconds=start_seconds),
            began + timedelta(seconds=start_seconds + verify_seconds - settle_seconds))


def _written_pool_size(change: ChangeRecord) -> int | None:
    """The pool size a pool change wrote, or None for any other change."""
    written = change.edit.to_value
    if change.edit.setting is not Setting.POOL_SIZE or not isinstance(written, PoolSize):
        return None
    return written.default_pool_size


def compute_in_effect_at(change: ChangeRecord, *, observations: Observations) -> datetime:
    """When the change took effect: at its write, or, for a pool size that the exporter shows, when every pooler
    pod began to serve it (the ini is served only once something reloads it; the after-span must not judge
    the old pool). Served by the first reading after the write counts from the write: readings a step apart
    cannot tell closer. So does a size served since the first reading the window holds: when it began is out
    of sight, and a write older than the window would otherwise seem to take effect anew at every evaluation.
    A size not served now counts from the write (``decide_unserved_pool`` holds it)."""
    size = _written_pool_size(change)
    if size is None:
        return change.at
    served = signals.compute_pool_served(observations, size=size)
    if (isinstance(served, Unknown) or served.since_seconds is None or served.throughout
            or served.since_seconds <= change.at.timestamp() + observations.step_seconds):
        return change.at
    return datetime.fromtimestamp(served.since_seconds, tz=change.at.tzinfo)


def decide_unserved_pool(
    profile: PerformanceProfileSpec, observations: Observations, change: ChangeRecord, *, now: datetime,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> VerdictOutcome | str | None:
    """For a pool-size change still in its ConfigMap or Pooler (someone else's value, or the object gone, is
    ``decide_verdict``'s) that not every pooler pod serves: why it waits (its verification has not begun), or,
    once its verdict would have been due, the verdict. A size not served by every pod by then was never
    verified, and a reload or restart would bring it in unverified: it is rolled back, so that the
    configuration again says what runs, the move barred. Where no pod serves it, undoing it takes nothing
    from what is served, so no shortage keeps it; where some may, it is undone as any rollback is. Either way
    a restore past the server-connection budget or the profile's bounds is not written (Inconclusive, kept),
    nor one with rollback off. None when served, not a pool change, or the exporter does not say.
    """
    size = _written_pool_size(change)
    if size is None:
        return None
    served = signals.compute_pool_served(observations, size=size)
    if isinstance(served, Unknown) or served.since_seconds is not None:
        return None
    _, in_effect, foreign = compute_restored_edits(change, profile=profile, live=observations.live)
    if foreign is not None or change.edit not in in_effect:
        return None
    _, due = compute_verdict_span(change, profile=profile, rate_window_seconds=observations.rate_window_seconds,
                                  thresholds=thresholds)
    unserved = f"pool size {size} written at {change.at:%H:%M:%S} but {served.describe()}"
    if now < due:
        return f"{unserved}: its verification begins once every pooler pod serves it (until {due:%H:%M:%S} at most)"
    cause = (f"{unserved}, {Duration(round((now - change.at).total_seconds()))} after the write: nothing reloads it "
             f"on every pod (spec.pool.pgbouncer.adminSecretRef, a reload sidecar); not served by every pooler pod "
             f"by its verdict, so never verified")
    if not profile.guardrails.rollback:
        return VerdictOutcome(Verdict.INCONCLUSIVE, f"{cause}; guardrails.rollback is off: kept")
    context = _recent_rollback_context(change, profile=profile, observations=observations, thresholds=thresholds,
                                       in_effect=in_effect, now=now)
    if served.by_some_pod:
        return _roll_back(context, cause=cause)
    over_budget = _find_pool_over_budget(context)
    if over_budget is not None:
        return VerdictOutcome(Verdict.INCONCLUSIVE, f"{cause}; but {over_budget}: kept")
    left = find_bounds_left(change.edit.setting, live=change.edit.to_value, new=change.edit.from_value,
                            profile=profile)
    if left is not None:
        return VerdictOutcome(Verdict.INCONCLUSIVE, f"{cause}; restoring it would leave the profile's bounds: "
                                                    f"{left}; kept")
    reason = (f"Rollback of {change.edit.setting.value} on {change.target}: {cause}; restoring the previous value "
              f"(no pooler pod serves the one written) and barring the move for {thresholds.barred_cooldowns} x "
              f"cooldown (doubled for each earlier rollback of it)")
    return VerdictOutcome(Verdict.ROLLED_BACK, cause,
                          rollback=compute_rollback(change, profile=profile, observations=observations, reason=reason))


def compute_rollback(
    change: ChangeRecord, *, profile: PerformanceProfileSpec, observations: Observations, reason: str
) -> ProposedChange:
    """The exact previous values of the change (and of its coupled edit) as one change.

    Its writer must write the coupled edit first (the HPA target), then the main one (``ProposedChange``):
    a restart between the two leaves the coupled edit back and the main edit in effect, which
    ``decide_verdict`` finishes.
    """
    live = observations.live
    coupled = change.coupled
    return ProposedChange(
        target=change.target,
        edit=Edit(setting=change.edit.setting, from_value=change.edit.to_value, to_value=change.edit.from_value),
        reason=reason,
        table_row="rollback",
        coupled=None if coupled is None else Edit(
            setting=coupled.setting, from_value=coupled.to_value, to_value=coupled.from_value
        ),
        coupled_target="" if coupled is None else (
            change.coupled_target or compute_target_name(coupled.setting, profile=profile, live=live)),
        rollback=True,
    )


def _holds_setting(setting: Setting, live: LiveConfig) -> bool:
    """Whether the object a setting lives on is there: a missing HPA or pool reads as the defaults otherwise."""
    if setting is Setting.RESOURCES:
        return bool(live.containers)
    if setting is Setting.POOL_SIZE:
        return live.pool is not None
    return live.hpa is not None


def _find_object_replaced(edit: Edit, *, change: ChangeRecord, profile: PerformanceProfileSpec, live: LiveConfig
                          ) -> str | None:
    """The object now holding ``edit``'s setting when it is not the one the change wrote (an HPA replaced by
    another of another name, a KEDA ScaledObject's, say), else None: its value is not perfpilot's."""
    recorded = change.coupled_target if edit is change.coupled else change.target
    found = compute_target_name(edit.setting, profile=profile, live=live)
    return found if recorded and found != recorded else None


def compute_restored_edits(
    change: ChangeRecord, *, profile: PerformanceProfileSpec, live: LiveConfig
) -> tuple[list[Edit], list[Edit], Edit | None]:
    """The change's edits split by their live value: (back at the value before, still perfpilot's), and the
    first edit whose object is gone or whose value is neither (someone else's), or None."""
    restored: list[Edit] = []
    in_effect: list[Edit] = []
    for edit in (change.edit, *([change.coupled] if change.coupled is not None else [])):
        if not _holds_setting(edit.setting, live) or _find_object_replaced(edit, change=change, profile=profile,
                                                                           live=live):
            return restored, in_effect, edit
        live_value = compute_live_value(edit.setting, profile=profile, live=live)
        if values_equal(edit.setting, live_value, edit.to_value):
            in_effect.append(edit)
        elif values_equal(edit.setting, live_value, edit.from_value):
            restored.append(edit)
        else:
            return restored, in_effect, edit
    return restored, in_effect, None


def _describe_not_ours(edit: Edit, *, change: ChangeRecord, profile: PerformanceProfileSpec, restored: list[Edit],
                       live: LiveConfig) -> str:
    """An edit of ``change`` that is not in effect, and how it stands."""
    name = ("coupled " if edit is change.coupled else "") + edit.setting.value
    if not _holds_setting(edit.setting, live):
        return f"{name}'s object is gone"
    replaced_by = _find_object_replaced(edit, change=change, profile=profile, live=live)
    if replaced_by is not None:
        written = change.coupled_target if edit is change.coupled else change.target
        return f"{name}'s object is gone ({written} written, {replaced_by} found)"
    if edit in restored:
        return f"{name} is back at its previous value alone"
    return f"{name} was changed by someone else since"


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def _find_regression(
    change: ChangeRecord, *, profile: PerformanceProfileSpec, observations: Observations, start: float,
    p95_after: float | None, thresholds: Thresholds,
) -> VerdictOutcome | str:
    """The verdict when the change stands (Inconclusive on unknown or moved load, Kept), else what regressed."""
    before = change.baseline
    errors_after = _mean_since(observations.error_ratio, start, observations=observations, thresholds=thresholds)
    rate_after = _mean_since(observations.request_rate_per_second, start, observations=observations,
                             thresholds=thresholds)
    p95_before = before.p95_latency_seconds
    errors_before = before.error_ratio
    p95_unknown = "p95 before or after the change unknown (or too few samples)"
    if (p95_after is None or p95_before is None) and (errors_after is None or errors_before is None):
        return VerdictOutcome(Verdict.INCONCLUSIVE, f"{p95_unknown}, and the error ratio too; change kept")
    rate_before = before.request_rate_per_second
    if rate_after is None or rate_before is None:
        return VerdictOutcome(Verdict.INCONCLUSIVE, "request rate before or after unknown (load not comparable); kept")
    moved = abs(rate_after - rate_before) / rate_before if rate_before > 0 else (
        0.0 if rate_after == 0 else float("inf"))
    if _exceeds(moved, thresholds.load_moved_fraction):
        return VerdictOutcome(
            Verdict.INCONCLUSIVE,
            f"request rate moved {moved:.0%} ({rate_before:.1f} -> {rate_after:.1f}/s) "
            f"> {thresholds.load_moved_fraction:.0%}; change kept",
        )
    slo = profile.slo.latency_p95.seconds
    regressions = []
    if (p95_after is not None and p95_before is not None and p95_after > slo
            and _exceeds(p95_after, p95_before * (1 + thresholds.regression_latency_fraction))):
        regressions.append(
            f"p95 {p95_before * 1000:.0f}ms -> {p95_after * 1000:.0f}ms (above SLO {slo * 1000:.0f}ms "
            f"and > {thresholds.regression_latency_fraction:.0%} worse)"
        )
    # The error criterion stands on its own: errors up with p95 unknown (every request failing fast, say)
    # are still a regression.
    if (errors_after is not None and errors_before is not None
            and _exceeds(errors_after - errors_before, thresholds.regression_error_ratio_increase)):
        regressions.append(
            f"error ratio {_pct(errors_before)} -> {_pct(errors_after)} "
            f"(> {thresholds.regression_error_ratio_increase * 100:g} points up)"
        )
    if not regressions:
        if p95_after is None or p95_before is None:
            return VerdictOutcome(Verdict.INCONCLUSIVE, f"{p95_unknown}; no error regression; change kept")
        errors_note = "" if errors_after is not None and errors_before is not None else " (error ratio unknown)"
        return VerdictOutcome(
            Verdict.KEPT,
            f"no regression: p95 {p95_before * 1000:.0f}ms -> {p95_after * 1000:.0f}ms, "
            f"load moved {moved:.0%}{errors_note}",
        )
    what = "; ".join(regressions)
    if not profile.guardrails.rollback:
        return VerdictOutcome(Verdict.KEPT, f"regression ({what}) but guardrails.rollback is off; kept")
    return what


@dataclass(frozen=True)
class _RollbackContext:
    """What a rollback's last check needs: the edits it would undo and the latency now."""

    change: ChangeRecord
    profile: PerformanceProfileSpec
    observations: Observations
    thresholds: Thresholds
    in_effect: list[Edit]
    p95_after: float | None


def _find_pool_over_budget(context: _RollbackContext) -> str | None:
    """Why restoring the pool size would break maxServerConnections, or None: the pooler may have scaled out
    since the change, and the budget is a guardrail no write may break, a rollback included."""
    pool = context.observations.live.pool
    for edit in context.in_effect:
        restored = edit.from_value
        if edit.setting is not Setting.POOL_SIZE or not isinstance(restored, PoolSize) or pool is None:
            continue
        budget = context.profile.pool.max_server_connections
        if not fits_server_budget(default_pool_size=restored.default_pool_size,
                                  reserve_pool_size=restored.reserve_pool_size,
                                  pooler_replicas=pool.pooler_replicas, max_server_connections=budget):
            return (f"restoring pool {restored.default_pool_size}+{restored.reserve_pool_size} on "
                    f"{pool.pooler_replicas} pooler replicas would exceed maxServerConnections {budget}")
    return None


def _roll_back(context: _RollbackContext, *, cause: str, partly: str = "") -> VerdictOutcome:
    """RolledBack with the exact previous values, unless undoing what is still in effect would take capacity
    away while p95 is above the SLO (Inconclusive, kept, nothing barred) — a pool grown with p95 within the
    SLO excepted, which is rolled back."""
    change, slo = context.change, context.profile.slo.latency_p95.seconds
    p95_after, p95_before = context.p95_after, change.baseline.p95_latency_seconds
    if p95_after is not None and p95_after > slo:
        replicas = compute_replica_counts(context.observations.live.hpa)
        # Only a rollback that purely adds capacity (undoing a cut) may run during a shortage; undoing a
        # move toward capacity, or a mixed one, takes capacity away while users already wait. Except a pool
        # grown with p95 within the SLO (no emergency, no breach before it): more server connections are more
        # load on the database, which may be what slowed every query, and DESIGN rolls a regression back.
        made_in_shortage = change.emergency or (p95_before is not None and p95_before > slo)
        undo_takes_capacity = [edit for edit in context.in_effect
                               if compute_edit_direction(edit, replicas=replicas) >= 0
                               and (made_in_shortage or edit.setting is not Setting.POOL_SIZE)]
        if undo_takes_capacity:
            edit = undo_takes_capacity[0]
            return VerdictOutcome(
                Verdict.INCONCLUSIVE,
                f"{cause} but p95 {p95_after * 1000:.0f}ms is still above the SLO {slo * 1000:.0f}ms: "
                f"rolling back {edit.setting.value} {edit.to_value} -> {edit.from_value} would "
                f"take capacity away during the shortage; change kept{partly}, nothing barred",
            )
    over_budget = _find_pool_over_budget(context)
    if over_budget is not None:
        return VerdictOutcome(Verdict.INCONCLUSIVE, f"{cause} but {over_budget}; change kept, nothing barred (the "
                                                    f"pool rules grow it within the budget)")
    for edit in context.in_effect:
        # The value before may lie outside the bounds: hand-set there (the change was a step back toward
        # them), or the bounds narrowed since. No write leaves the bounds, a rollback included.
        left = find_bounds_left(edit.setting, live=edit.to_value, new=edit.from_value, profile=context.profile)
        if left is not None:
            return VerdictOutcome(Verdict.INCONCLUSIVE, f"{cause} but restoring {edit.setting.value} would leave "
                                                        f"the profile's bounds: {left}; change kept, nothing barred")
    reason = (f"Rollback of {change.edit.setting.value} on {change.target}: {cause}; restoring the "
              f"previous value{partly} and barring the move for {context.thresholds.barred_cooldowns} x cooldown "
              f"(doubled for each earlier rollback of it)")
    return VerdictOutcome(
        Verdict.ROLLED_BACK,
        cause,
        rollback=compute_rollback(change, profile=context.profile, observations=context.observations, reason=reason),
    )


def _describe_late_verdict(change: ChangeRecord, *, profile: PerformanceProfileSpec, now: datetime, due: datetime
                           ) -> str | None:
    """Why a pending change is judged too late to be judged at all, or None.

    A verdict normally comes at the first evaluation after it is ``due`` (``verifyFor`` after the change,
    ``compute_verdict_span``). One more than ``window`` + ``interval`` later (the operator was down, or the
    profile Off or paused) would set the latency of now, with whatever else changed meanwhile, against a
    baseline from before the change: a rollback would undo a setting live for hours on evidence that is not
    its own. A rollback found due and not written (Recommend mode, a failed write, a rollout in progress) is
    found due again at each evaluation, so its lateness counts from the last time (``rollback_due_at``): a
    pause after it still makes it late.
    """
    guard = profile.guardrails
    due_from = due.timestamp()
    if change.rollback_due_at is not None:
        due_from = max(due_from, change.rollback_due_at.timestamp())
    late_seconds = now.timestamp() - due_from
    if late_seconds <= guard.window.seconds + guard.interval.seconds:
        return None
    return (f"judged {Duration(round(late_seconds))} after its verification ended (or its rollback was last found "
            f"due), over window {guard.window} + interval {guard.interval} (the operator stopped, or the profile "
            f"Off or paused): latency now no longer shows this change alone; kept")


def _recent_rollback_context(
    change: ChangeRecord, *, profile: PerformanceProfileSpec, observations: Observations, thresholds: Thresholds,
    in_effect: list[Edit], now: datetime,
) -> _RollbackContext:
    """A rollback decided before the verdict's window: the shortage check reads p95 of the recent span.

    Unlike the verdict, it keeps samples whose rate window reaches back past the write: it asks whether users
    wait now, not whose configuration made them wait, and an unknown p95 would let the undo through.
    """
    recent_start = max(change.at.timestamp(), now.timestamp() - thresholds.recent_span_seconds)
    p95_recent = _mean_since(observations.latency_p95_seconds, recent_start, observations=observations,
                             thresholds=thresholds)
    return _RollbackContext(change=change, profile=profile, observations=observations, thresholds=thresholds,
                            in_effect=in_effect, p95_after=p95_recent)


def decide_unfinished_write(
    profile: PerformanceProfileSpec,
    observations: Observations,
    change: ChangeRecord,
    *,
    now: datetime,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> VerdictOutcome | None:
    """The verdict a pending change gets at once, during its verification too, when its live values show that
    it is not (wholly) in effect; None when they do not.

    A change is recorded Pending before it is written (``state``'s contract with its writer), and a change
    and a rollback alike write the coupled edit first. So, with no value someone else's:

    - every value back at the one before: the write never took place (or a rollback was written and its
      status lost, or someone reverted it): **Reverted**, its move barred;
    - with ``guardrails.rollback`` on, the coupled edit back and the main edit in effect: a rollback cut short
      between its writes, finished (**RolledBack**);
    - with ``guardrails.rollback`` on, the coupled edit in effect and the main edit not: a change cut short
      between its writes (or whose main value someone put back). The coupled edit is there only to keep the
      replica count through the main one, so it is undone too: **RolledBack**, the move barred.

    Either rollback is not written when it would take capacity away while p95 is above the SLO
    (Inconclusive, kept).
    """
    restored, in_effect, foreign = compute_restored_edits(change, profile=profile, live=observations.live)
    if foreign is not None:
        return None
    if not in_effect:
        return VerdictOutcome(
            Verdict.REVERTED,
            f"{change.edit.setting.value} is back at its previous value (a write that never took place, a "
            f"rollback whose status was not saved, or a revert): the change is not in effect, so it is not "
            f"judged; the move is barred",
        )
    coupled = change.coupled
    if coupled is None or not profile.guardrails.rollback:
        return None  # with rollback off, a mix is judged at its verdict like any change (someone else's)
    context = _recent_rollback_context(change, profile=profile, observations=observations, thresholds=thresholds,
                                       in_effect=in_effect, now=now)
    if restored == [coupled] and in_effect == [change.edit]:
        # A rollback writes its coupled edit first too, so this is one cut short by a restart: it was decided
        # then, and is finished now (the written edit rewritten as it is: writes are idempotent), whatever the
        # latency says now. Someone restoring only the coupled value looks the same, and gets the rollback
        # too: the safe side, the move barred for a while.
        return _roll_back(context, cause=f"a rollback cut short between its writes ({coupled.setting.value} "
                                         f"already back)", partly=" (the rest of it is already written)")
    if restored == [change.edit] and in_effect == [coupled]:
        return _roll_back(context, cause=(f"the change was cut short between its writes ({coupled.setting.value} "
                                          f"written, {change.edit.setting.value} still at its previous value)"),
                          partly=f" of {coupled.setting.value}")
    return None


def decide_emergency_rollback(
    profile: PerformanceProfileSpec,
    observations: Observations,
    change: ChangeRecord,
    *,
    now: datetime,
    cause: str,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> VerdictOutcome | None:
    """RolledBack, before its verdict, for a pending change wholly in effect that an SLO emergency calls into
    question, or None when it cannot be rolled back as any rollback is (rollback off, someone else's value,
    the pool budget, capacity taken away during the shortage). Which changes qualify is the caller's."""
    if not profile.guardrails.rollback:
        return None
    restored, in_effect, foreign = compute_restored_edits(change, profile=profile, live=observations.live)
    if foreign is not None or restored or not in_effect:
        return None
    context = _recent_rollback_context(change, profile=profile, observations=observations, thresholds=thresholds,
                                       in_effect=in_effect, now=now)
    outcome = _roll_back(context, cause=cause)
    return outcome if outcome.rollback is not None else None


def decide_verdict(
    profile: PerformanceProfileSpec,
    observations: Observations,
    change: ChangeRecord,
    *,
    now: datetime,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> VerdictOutcome:
    """The verdict on a pending change, in this order (docs/tuning-tables.md, section 7):

    - every value back where it was: Reverted, not judged (the change is no longer in effect);
    - only the coupled edit back, rollback on: a rollback cut short between its writes, finished;
    - judged more than window + interval after verifyFor ended, or after its rollback was last found due:
      Inconclusive (the evidence is stale);
    - the main edit not in effect (back alone with rollback off, someone else's, its object gone): Inconclusive;
    - rate unknown, p95 and error ratio both unknown, or the load moved: Inconclusive; no regression: Kept
      (Inconclusive with p95 unknown); a regression with rollback off: Kept;
    - a regression with the coupled value changed by someone else (or its object gone): Inconclusive;
    - a regression: RolledBack, unless undoing it takes capacity away during a shortage, breaks the pool
      budget or leaves the profile's bounds (Inconclusive).

    verifyFor counts from when the change took effect (``compute_in_effect_at``). A pool size that not every
    pooler pod serves is the engine's to hold or roll back first (``decide_unserved_pool``).
    """
    unfinished = decide_unfinished_write(profile, observations, change, now=now, thresholds=thresholds)
    if unfinished is not None:
        return unfinished
    restored, in_effect, foreign = compute_restored_edits(change, profile=profile, live=observations.live)
    after_start, due = compute_verdict_span(change, profile=profile,
                                            rate_window_seconds=observations.rate_window_seconds, thresholds=thresholds,
                                            in_effect_at=compute_in_effect_at(change, observations=observations))
    start = max(after_start.timestamp(), now.timestamp() - profile.guardrails.verify_for.seconds)
    p95_after = _mean_since(observations.latency_p95_seconds, start, observations=observations, thresholds=thresholds)
    context = _RollbackContext(change=change, profile=profile, observations=observations, thresholds=thresholds,
                               in_effect=in_effect, p95_after=p95_after)
    late = _describe_late_verdict(change, profile=profile, now=now, due=due)
    if late is not None:
        return VerdictOutcome(Verdict.INCONCLUSIVE, late)
    if change.edit not in in_effect:
        # With rollback off a change cut short between its writes is left as it is; a main value someone else
        # set, or its object gone, is theirs. Either way the latency is not this change's to answer for.
        what = _describe_not_ours(foreign or change.edit, change=change, profile=profile, restored=restored,
                                  live=observations.live)
        return VerdictOutcome(Verdict.INCONCLUSIVE, f"{what}: the change is not in effect, so it is not judged; "
                                                    f"nothing rolled back")
    judged = _find_regression(change, profile=profile, observations=observations, start=start, p95_after=p95_after,
                              thresholds=thresholds)
    if isinstance(judged, VerdictOutcome):
        return judged
    cause = f"regression ({judged})"
    # The main edit is in effect; the coupled one may be someone else's, gone, or back alone (with rollback off:
    # not what a rollback leaves).
    theirs = foreign or (restored[0] if restored else None)
    if theirs is not None:
        what = _describe_not_ours(theirs, change=change, profile=profile, restored=restored,
                                  live=observations.live)
        return VerdictOutcome(Verdict.INCONCLUSIVE, f"{cause} but {what}; not rolled back")
    return _roll_back(context, cause=cause)
