"""The verdict on a pending change (DESIGN section 3, step 5) and the rollback it may call for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import Baseline, ChangeRecord, Edit, Setting, Verdict
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.guardrails import compute_edit_direction, compute_replica_counts
from perfpilot.tuning.observations import LiveConfig, Observations, Series, Signal, Unknown
from perfpilot.tuning.thresholds import DEFAULT_THRESHOLDS, Thresholds
from perfpilot.tuning.values import compute_live_value, compute_target_name, values_equal


@dataclass(frozen=True)
class VerdictOutcome:
    verdict: Verdict
    reason: str
    rollback: ProposedChange | None = None


def _mean_since(signal: Signal, start_seconds: float) -> float | None:
    if isinstance(signal, Unknown):
        return None
    recent = signal if signal.timestamps_seconds[0] >= start_seconds else signal.since(start_seconds)
    return recent.mean if isinstance(recent, Series) else None


def compute_baseline(observations: Observations, *, span_seconds: float) -> Baseline:
    """Means of p95, error ratio and request rate over the last ``span_seconds`` before a change."""
    start = observations.at.timestamp() - span_seconds
    return Baseline(
        p95_latency_seconds=_mean_since(observations.latency_p95_seconds, start),
        error_ratio=_mean_since(observations.error_ratio, start),
        request_rate=_mean_since(observations.request_rate_per_second, start),
    )


def compute_rollback(
    change: ChangeRecord, *, profile: PerformanceProfileSpec, observations: Observations, reason: str
) -> ProposedChange:
    """The exact previous values of the change (and of its coupled edit) as one change.

    Its writer writes the coupled edit first (the HPA target), then the main one: a restart between the two
    leaves the coupled edit back and the main edit in effect, which ``decide_verdict`` finishes.
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
        coupled_target="" if coupled is None else compute_target_name(coupled.setting, profile=profile, live=live),
        rollback=True,
    )


def _holds_setting(setting: Setting, live: LiveConfig) -> bool:
    """Whether the object a setting lives on is there: a missing HPA or pool reads as the defaults otherwise."""
    if setting is Setting.RESOURCES:
        return bool(live.containers)
    if setting is Setting.POOL_SIZE:
        return live.pool is not None
    return live.hpa is not None


def compute_restored_edits(
    change: ChangeRecord, *, profile: PerformanceProfileSpec, live: LiveConfig
) -> tuple[list[Edit], list[Edit], Edit | None]:
    """The change's edits split by their live value: (back at the value before, still perfpilot's), and the
    first edit whose object is gone or whose value is neither (someone else's), or None."""
    restored: list[Edit] = []
    in_effect: list[Edit] = []
    for edit in (change.edit, *([change.coupled] if change.coupled is not None else [])):
        if not _holds_setting(edit.setting, live):
            return restored, in_effect, edit
        live_value = compute_live_value(edit.setting, profile=profile, live=live)
        if values_equal(edit.setting, live_value, edit.to_value):
            in_effect.append(edit)
        elif values_equal(edit.setting, live_value, edit.from_value):
            restored.append(edit)
        else:
            return restored, in_effect, edit
    return restored, in_effect, None


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def _judge(
    change: ChangeRecord, *, profile: PerformanceProfileSpec, observations: Observations, start: float,
    p95_after: float | None, thresholds: Thresholds,
) -> VerdictOutcome | str:
    """The verdict on a change in effect when it stands (Inconclusive, Kept), else what regressed."""
    before = change.baseline
    errors_after = _mean_since(observations.error_ratio, start)
    rate_after = _mean_since(observations.request_rate_per_second, start)
    if p95_after is None or before.p95_latency_seconds is None:
        return VerdictOutcome(Verdict.INCONCLUSIVE, "p95 before or after the change unknown; change kept")
    if rate_after is None or before.request_rate is None:
        return VerdictOutcome(Verdict.INCONCLUSIVE, "request rate before or after unknown (load not comparable); kept")
    moved = abs(rate_after - before.request_rate) / before.request_rate if before.request_rate > 0 else (
        0.0 if rate_after == 0 else float("inf"))
    if moved > thresholds.load_moved_fraction:
        return VerdictOutcome(
            Verdict.INCONCLUSIVE,
            f"request rate moved {moved:.0%} ({before.request_rate:.1f} -> {rate_after:.1f}/s) "
            f"> {thresholds.load_moved_fraction:.0%}; change kept",
        )
    slo = profile.slo.latency_p95.seconds
    regressions = []
    if p95_after > slo and p95_after > before.p95_latency_seconds * (1 + thresholds.regression_latency_fraction):
        regressions.append(
            f"p95 {before.p95_latency_seconds * 1000:.0f}ms -> {p95_after * 1000:.0f}ms (above SLO {slo * 1000:.0f}ms "
            f"and > {thresholds.regression_latency_fraction:.0%} worse)"
        )
    if (errors_after is not None and before.error_ratio is not None
            and errors_after - before.error_ratio > thresholds.regression_error_ratio_increase):
        regressions.append(
            f"error ratio {_pct(before.error_ratio)} -> {_pct(errors_after)} "
            f"(> {thresholds.regression_error_ratio_increase * 100:g} points up)"
        )
    errors_note = "" if errors_after is not None and before.error_ratio is not None else " (error ratio unknown)"
    if not regressions:
        return VerdictOutcome(
            Verdict.KEPT,
            f"no regression: p95 {before.p95_latency_seconds * 1000:.0f}ms -> {p95_after * 1000:.0f}ms, "
            f"load moved {moved:.0%}{errors_note}",
        )
    what = "; ".join(regressions)
    if not profile.guardrails.rollback:
        return VerdictOutcome(Verdict.KEPT, f"regression ({what}) but guardrails.rollback is off; kept")
    return what


def decide_verdict(
    profile: PerformanceProfileSpec,
    observations: Observations,
    change: ChangeRecord,
    *,
    now: datetime,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> VerdictOutcome:
    """Compare after with before: load moved -> Inconclusive; regression -> RolledBack (or Kept); else Kept.

    A change whose every value is found back where it was is not judged: Reverted, it is no longer in effect.
    """
    restored, in_effect, foreign = compute_restored_edits(change, profile=profile, live=observations.live)
    if foreign is None and not in_effect:
        # A rollback written just before a restart whose status was not saved, someone's revert, or a write
        # that never happened: recorded Reverted, and the move barred so that it is not proposed again at once.
        return VerdictOutcome(
            Verdict.REVERTED,
            f"{change.edit.setting.value} is back at its previous value (a rollback whose status was not saved, "
            f"a revert, or a write that never took place): the change is not in effect, so it is not judged; "
            f"the move is barred",
        )
    verify_seconds = profile.guardrails.verify_for.seconds
    settle_end = change.at.timestamp() + verify_seconds * thresholds.verify_settle_fraction
    start = max(settle_end, now.timestamp() - verify_seconds)
    p95_after = _mean_since(observations.latency_p95_seconds, start)
    slo = profile.slo.latency_p95.seconds
    if foreign is None and restored == [change.coupled] and profile.guardrails.rollback:
        # The coupled edit back, the main one still perfpilot's: a rollback cut short between its two writes
        # (a restart), as a rollback writes its coupled edit first. It was decided already, so it is finished
        # (the written edit rewritten as it is: writes are idempotent), whatever the latency says now.
        assert change.coupled is not None
        cause = f"a rollback cut short between its writes ({change.coupled.setting.value} already back)"
        partly = " (the rest of it is already written)"
    else:
        if restored:
            # Any other mix (the main edit back alone) is not what a rollback leaves: someone else's.
            foreign = restored[0]
        judged = _judge(change, profile=profile, observations=observations, start=start, p95_after=p95_after,
                        thresholds=thresholds)
        if isinstance(judged, VerdictOutcome):
            return judged
        cause, partly = f"regression ({judged})", ""
        if foreign is not None:
            what_edit = "coupled " if foreign is change.coupled else ""
            since = ("'s object is gone" if not _holds_setting(foreign.setting, observations.live)
                     else " was changed by someone else since")
            return VerdictOutcome(
                Verdict.INCONCLUSIVE, f"{cause} but {what_edit}{foreign.setting.value}{since}; not rolled back",
            )
    if p95_after is not None and p95_after > slo:
        replicas = compute_replica_counts(observations.live.hpa)
        # Only a rollback that purely adds capacity (undoing a cut) may run during a shortage; undoing a
        # move toward capacity, or a mixed one, takes capacity away while users already wait.
        backward = [edit for edit in in_effect if compute_edit_direction(edit, replicas=replicas) >= 0]
        if backward:
            return VerdictOutcome(
                Verdict.INCONCLUSIVE,
                f"{cause} but p95 {p95_after * 1000:.0f}ms is still above the SLO {slo * 1000:.0f}ms: "
                f"rolling back {backward[0].setting.value} {backward[0].to_value} -> {backward[0].from_value} would "
                f"take capacity away during the shortage; change kept{partly}, nothing barred",
            )
    reason = (f"Rollback of {change.edit.setting.value} on {change.target}: {cause}; restoring the "
              f"previous value{partly} and barring the move for {thresholds.barred_cooldowns} x cooldown")
    return VerdictOutcome(
        Verdict.ROLLED_BACK,
        cause,
        rollback=compute_rollback(change, profile=profile, observations=observations, reason=reason),
    )
