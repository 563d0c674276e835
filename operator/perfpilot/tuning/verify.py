"""The verdict on a pending change (DESIGN section 3, step 5) and the rollback it may call for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import Baseline, ChangeRecord, Edit, Verdict
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.guardrails import compute_edit_direction, compute_replica_counts
from perfpilot.tuning.observations import Observations, Series, Signal, Unknown
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
    """The exact previous values of the change (and of its coupled edit) as one change."""
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


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def decide_verdict(
    profile: PerformanceProfileSpec,
    observations: Observations,
    change: ChangeRecord,
    *,
    now: datetime,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> VerdictOutcome:
    """Compare after with before: load moved -> Inconclusive; regression -> RolledBack (or Kept); else Kept."""
    verify_seconds = profile.guardrails.verify_for.seconds
    settle_end = change.at.timestamp() + verify_seconds * thresholds.verify_settle_fraction
    start = max(settle_end, now.timestamp() - verify_seconds)
    before = change.baseline
    p95_after = _mean_since(observations.latency_p95_seconds, start)
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
    edits = (change.edit, *([change.coupled] if change.coupled is not None else []))
    restored = 0
    for edit in edits:
        live_value = compute_live_value(edit.setting, profile=profile, live=observations.live)
        if values_equal(edit.setting, live_value, edit.from_value):
            restored += 1
        elif not values_equal(edit.setting, live_value, edit.to_value):
            what_edit = "coupled " if edit is change.coupled else ""
            return VerdictOutcome(
                Verdict.INCONCLUSIVE,
                f"regression ({what}) but {what_edit}{edit.setting.value} was changed by someone else since; "
                f"not rolled back",
            )
    if restored == len(edits):
        # Every value is back where it was: a rollback written just before a restart lost its status, or
        # someone reverted the change. Either way the verdict stands and the move is barred; nothing to write.
        return VerdictOutcome(
            Verdict.ROLLED_BACK,
            f"regression: {what}; {change.edit.setting.value} is already back at its previous value (a rollback "
            f"whose status was not saved, or a revert), so the move is barred and nothing is written",
        )
    if p95_after > slo:
        replicas = compute_replica_counts(observations.live.hpa)
        # Only a rollback that purely adds capacity (undoing a cut) may run during a shortage; undoing a
        # move toward capacity, or a mixed one, takes capacity away while users already wait.
        backward = [edit for edit in (change.edit, *([change.coupled] if change.coupled is not None else []))
                    if compute_edit_direction(edit, replicas=replicas) >= 0]
        if backward:
            return VerdictOutcome(
                Verdict.INCONCLUSIVE,
                f"regression ({what}) but p95 {p95_after * 1000:.0f}ms is still above the SLO {slo * 1000:.0f}ms: "
                f"rolling back {backward[0].setting.value} {backward[0].to_value} -> {backward[0].from_value} would "
                f"take capacity away during the shortage; change kept, nothing barred",
            )
    reason = (f"Rollback of {change.edit.setting.value} on {change.target}: regression ({what}); restoring the "
              f"previous value and barring the move for {thresholds.barred_cooldowns} x cooldown")
    return VerdictOutcome(
        Verdict.ROLLED_BACK,
        f"regression: {what}",
        rollback=compute_rollback(change, profile=profile, observations=observations, reason=reason),
    )
